"""The GPU pool on EC2 (moto server): describe, state-filtered start and stop, retries, capacity fallback."""

from __future__ import annotations

from datetime import timezone

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from gpuorch.aws.clients import AwsClients
from gpuorch.errors import Conflict, Unavailable
from gpuorch.settings import Settings
from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.pool import (
    ALREADY_RUNNING, ALREADY_STOPPED, ALREADY_STOPPING, CALL, EC2_CLIENT_CONFIG, GONE, PENDING, STARTED, STOPPING,
    WAIT, CapacityError, Ec2Unavailable, InstancePool, PoolInstance, UnknownInstance, is_retryable, plan_start,
    plan_stop, start_candidates,
)
from lifecycle.model import INSTANCE_STATES, Instance

from tests.lifecycle.live.conftest import Ec2Proxy, client_error
from tests.support.aws_proxy import AwsProxy


@pytest.mark.parametrize("state, start, stop", [
    ("pending", PENDING, WAIT),
    ("running", ALREADY_RUNNING, CALL),
    ("stopping", WAIT, ALREADY_STOPPING),
    ("stopped", CALL, ALREADY_STOPPED),
    ("shutting-down", GONE, GONE),
    ("terminated", GONE, GONE),
])
def test_plans_by_state(state, start, stop):
    assert plan_start(state) == start
    assert plan_stop(state) == stop


def test_every_state_has_a_plan():
    assert all(plan_start(s) and plan_stop(s) for s in INSTANCE_STATES)


@pytest.mark.parametrize("code, status, retryable", [
    ("RequestLimitExceeded", 503, True),
    ("Throttling", 400, True),
    ("ThrottlingException", 400, True),
    ("InternalError", 500, True),
    ("ServiceUnavailable", 503, True),
    ("SomethingNew", 502, True),
    ("InsufficientInstanceCapacity", 500, False),  # EC2 sends it as a server error
    ("InsufficientCapacity", 500, False),  # ... and this one too
    ("UnfulfillableCapacity", 400, False),
    ("IncorrectInstanceState", 400, False),
    ("UnauthorizedOperation", 403, False),
    ("InvalidInstanceID.NotFound", 400, False),
])
def test_only_throttling_and_server_errors_are_retried(code, status, retryable):
    assert is_retryable(client_error(code, "StartInstances", status=status)) is retryable


def test_other_exceptions_are_not_retried():
    assert not is_retryable(ValueError("x"))


def test_an_unreachable_ec2_is_retried_like_a_throttled_one():
    assert is_retryable(EndpointConnectionError(endpoint_url="http://ec2"))


@pytest.mark.parametrize("current, preferred, fallbacks, expected", [
    ("g6e.2xlarge", None, (), ("g6e.2xlarge",)),
    ("g6e.2xlarge", None, ("g6e.4xlarge", "g5.2xlarge"), ("g6e.2xlarge", "g6e.4xlarge", "g5.2xlarge")),
    ("g6e.4xlarge", "g6e.2xlarge", ("g6e.4xlarge",), ("g6e.2xlarge", "g6e.4xlarge")),
    ("g6e.2xlarge", None, ("g6e.2xlarge", "g6e.4xlarge"), ("g6e.2xlarge", "g6e.4xlarge")),
])
def test_start_candidates(current, preferred, fallbacks, expected):
    assert start_candidates(current, preferred, fallbacks) == expected


class Sleeps(list):
    """Records backoff sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def state_of(ec2, instance_id) -> tuple[str, str]:
    item = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return item["State"]["Name"], item["InstanceType"]


def test_describe_lists_the_pools_live_instances(ec2, pool_name):
    pool = InstancePool(ec2, pool_name)
    first = create_local_instance(ec2, pool_name)
    second = create_local_instance(ec2, pool_name, instance_type="g6e.4xlarge")
    gone = create_local_instance(ec2, pool_name)
    ec2.terminate_instances(InstanceIds=[gone])
    create_local_instance(ec2, "someone-else")
    pool.start(second)

    described = pool.describe()
    assert [(i.instance_id, i.state, i.instance_type) for i in described] == sorted(
        [(first, "stopped", "g6e.2xlarge"), (second, "running", "g6e.4xlarge")]
    )
    assert all(isinstance(i, Instance) and i.market == "on-demand" for i in described)
    assert all(i.launched_at is not None and i.launched_at.tzinfo == timezone.utc for i in described)


def test_start_then_start_again_makes_one_call(ec2, pool_name, stopped_instance):
    proxy = Ec2Proxy(ec2)
    pool = InstancePool(proxy, pool_name)
    assert pool.start(stopped_instance) == STARTED
    assert state_of(ec2, stopped_instance)[0] == "running"
    assert pool.start(stopped_instance) == ALREADY_RUNNING
    assert proxy.count("start_instances") == 1


def test_stop_then_stop_again_makes_one_call(ec2, pool_name, stopped_instance):
    proxy = Ec2Proxy(ec2)
    pool = InstancePool(proxy, pool_name)
    pool.start(stopped_instance)
    assert pool.stop(stopped_instance) == STOPPING
    assert state_of(ec2, stopped_instance)[0] == "stopped"
    assert pool.stop(stopped_instance) == ALREADY_STOPPED
    assert proxy.count("stop_instances") == 1


class SeenIn(Ec2Proxy):
    """Describes one instance in a chosen state: moto moves from stopped to running (and back) at once."""

    def __init__(self, real, instance_id, state):
        super().__init__(real)
        self.instance_id, self.state = instance_id, state

    def intercept(self, name, method, kwargs):
        answer = method(**kwargs)
        if name == "describe_instances":
            for reservation in answer["Reservations"]:
                for item in reservation["Instances"]:
                    if item["InstanceId"] == self.instance_id:
                        item["State"]["Name"] = self.state
        return answer


@pytest.mark.parametrize("state, outcome", [("pending", PENDING), ("running", ALREADY_RUNNING), ("stopping", WAIT)])
def test_start_makes_no_call_unless_stopped(ec2, pool_name, stopped_instance, state, outcome):
    proxy = SeenIn(ec2, stopped_instance, state)
    assert InstancePool(proxy, pool_name).start(stopped_instance) == outcome
    assert proxy.count("start_instances") == 0


@pytest.mark.parametrize("state, outcome", [
    ("pending", WAIT), ("stopping", ALREADY_STOPPING), ("stopped", ALREADY_STOPPED),
])
def test_stop_makes_no_call_unless_running(ec2, pool_name, stopped_instance, state, outcome):
    proxy = SeenIn(ec2, stopped_instance, state)
    assert InstancePool(proxy, pool_name).stop(stopped_instance) == outcome
    assert proxy.count("stop_instances") == 0


@pytest.mark.parametrize("state", ["shutting-down", "terminated"])
def test_a_vanishing_instance_is_unknown(ec2, pool_name, stopped_instance, state):
    pool = InstancePool(SeenIn(ec2, stopped_instance, state), pool_name)
    with pytest.raises(UnknownInstance):
        pool.start(stopped_instance)
    with pytest.raises(UnknownInstance):
        pool.stop(stopped_instance)


def test_instances_outside_the_pool_are_unknown(ec2, pool_name):
    other = create_local_instance(ec2, "another-pool")
    pool = InstancePool(ec2, pool_name)
    for instance_id in (other, "i-0123456789abcdef0", "not-an-id"):
        with pytest.raises(UnknownInstance):
            pool.start(instance_id)
    assert state_of(ec2, other)[0] == "stopped"


class Failing(Ec2Proxy):
    """Raises the given errors, one per call, before letting an operation through to moto."""

    def __init__(self, real, operation, errors):
        super().__init__(real)
        self.operation, self.errors = operation, list(errors)

    def intercept(self, name, method, kwargs):
        if name == self.operation and self.errors:
            raise self.errors.pop(0)
        return method(**kwargs)


def test_throttling_is_retried_with_backoff(ec2, pool_name, stopped_instance):
    errors = [client_error("RequestLimitExceeded", "StartInstances", status=503),
              client_error("InternalError", "StartInstances", status=500)]
    sleeps = Sleeps()
    pool = InstancePool(Failing(ec2, "start_instances", errors), pool_name, sleep=sleeps)
    assert pool.start(stopped_instance) == STARTED
    assert state_of(ec2, stopped_instance)[0] == "running"
    assert len(sleeps) == 2 and 0 < sleeps[0] < sleeps[1]


def test_throttling_that_does_not_stop_is_ec2_unavailable(ec2, pool_name, stopped_instance):
    errors = [client_error("Throttling", "DescribeInstances")] * 3
    sleeps = Sleeps()
    pool = InstancePool(Failing(ec2, "describe_instances", errors), pool_name, attempts=3, sleep=sleeps)
    with pytest.raises(Ec2Unavailable) as caught:
        pool.describe()
    assert isinstance(caught.value, Unavailable) and isinstance(caught.value.__cause__, ClientError)
    assert len(sleeps) == 2


def test_an_ec2_that_stays_unreachable_is_ec2_unavailable(ec2, pool_name, stopped_instance):
    errors = [EndpointConnectionError(endpoint_url="http://ec2")] * 3
    sleeps = Sleeps()
    pool = InstancePool(Failing(ec2, "describe_instances", errors), pool_name, attempts=3, sleep=sleeps)
    with pytest.raises(Ec2Unavailable) as caught:
        pool.describe()
    assert isinstance(caught.value.__cause__, EndpointConnectionError) and len(sleeps) == 2


def test_other_errors_are_not_retried(ec2, pool_name, stopped_instance):
    sleeps = Sleeps()
    proxy = Failing(ec2, "start_instances", [client_error("UnauthorizedOperation", "StartInstances", status=403)])
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        InstancePool(proxy, pool_name, sleep=sleeps).start(stopped_instance)
    assert sleeps == [] and proxy.count("start_instances") == 1


class NoCapacity(Ec2Proxy):
    """EC2 out of capacity for some instance types: StartInstances fails for them, as it does in AWS."""

    def __init__(self, real, short_of):
        super().__init__(real)
        self.short_of = set(short_of)

    def intercept(self, name, method, kwargs):
        if name == "start_instances":
            _, kind = state_of(self.real, kwargs["InstanceIds"][0])
            if kind in self.short_of:
                raise client_error("InsufficientInstanceCapacity", "StartInstances", status=500,
                                   message=f"We currently do not have sufficient {kind} capacity in us-east-1a.")
        return method(**kwargs)


def test_no_capacity_without_a_fallback_is_a_capacity_error(ec2, pool_name, stopped_instance):
    sleeps = Sleeps()
    proxy = NoCapacity(ec2, {"g6e.2xlarge"})
    with pytest.raises(CapacityError) as caught:
        InstancePool(proxy, pool_name, sleep=sleeps).start(stopped_instance)
    assert "sufficient g6e.2xlarge capacity" in caught.value.reason
    assert caught.value.reasons[0][0] == "g6e.2xlarge"
    assert state_of(ec2, stopped_instance) == ("stopped", "g6e.2xlarge")
    assert sleeps == [] and proxy.count("start_instances") == 1  # a 500 here, but not a retryable one


def test_no_capacity_falls_back_to_the_next_type(ec2, pool_name, stopped_instance):
    pool = InstancePool(NoCapacity(ec2, {"g6e.2xlarge"}), pool_name, fallback_types=("g6e.4xlarge", "g5.2xlarge"),
                        sleep=Sleeps())
    outcome = pool.start(stopped_instance)
    assert outcome == f"{STARTED} as g6e.4xlarge; no capacity for g6e.2xlarge"
    assert state_of(ec2, stopped_instance) == ("running", "g6e.4xlarge")


def test_no_capacity_for_any_type_restores_the_original(ec2, pool_name, stopped_instance):
    proxy = NoCapacity(ec2, {"g6e.2xlarge", "g6e.4xlarge"})
    sleeps = Sleeps()
    pool = InstancePool(proxy, pool_name, fallback_types=("g6e.4xlarge",), sleep=sleeps)
    with pytest.raises(CapacityError) as caught:
        pool.start(stopped_instance)
    assert sleeps == [] and proxy.count("start_instances") == 2
    assert [kind for kind, _ in caught.value.reasons] == ["g6e.2xlarge", "g6e.4xlarge"]
    assert state_of(ec2, stopped_instance) == ("stopped", "g6e.2xlarge")


def test_the_preferred_type_comes_back_at_the_next_start(ec2, pool_name, stopped_instance):
    ec2.modify_instance_attribute(InstanceId=stopped_instance, InstanceType={"Value": "g6e.4xlarge"})
    pool = InstancePool(ec2, pool_name, preferred_type="g6e.2xlarge", fallback_types=("g6e.4xlarge",))
    assert pool.start(stopped_instance) == STARTED
    assert state_of(ec2, stopped_instance) == ("running", "g6e.2xlarge")


class StartedMeanwhile(Ec2Proxy):
    """Another caller starts the instance between our look and our call; EC2 then refuses ours."""

    def intercept(self, name, method, kwargs):
        if name == "start_instances":
            method(**kwargs)
            raise client_error("IncorrectInstanceState", "StartInstances")
        return method(**kwargs)


def test_a_start_racing_another_reports_where_it_is(ec2, pool_name, stopped_instance):
    assert InstancePool(StartedMeanwhile(ec2), pool_name).start(stopped_instance) == ALREADY_RUNNING


def test_tag_adopts_an_instance_once(ec2, pool_name):
    instance_id = ec2.run_instances(ImageId="ami-1e749f67", MinCount=1, MaxCount=1,
                                    InstanceType="g6e.2xlarge")["Instances"][0]["InstanceId"]
    pool = InstancePool(ec2, pool_name)
    assert pool.describe() == ()
    assert pool.tag(instance_id) == f"tagged into pool {pool_name}"
    assert pool.tag(instance_id) == f"already in pool {pool_name}"
    assert [i.instance_id for i in pool.describe()] == [instance_id]
    with pytest.raises(Conflict, match="belongs to pool"):
        InstancePool(ec2, "another-pool").tag(instance_id)
    with pytest.raises(UnknownInstance):
        pool.tag("i-0123456789abcdef0")


def test_pool_instances_are_lifecycle_instances():
    instance = PoolInstance("i-1", "running", market="spot")
    assert isinstance(instance, Instance) and instance.market == "spot"
    with pytest.raises(ValueError):
        PoolInstance("i-1", "rebooting")


@pytest.fixture
def ec2_proxy(moto_endpoint):
    """The fault-injecting proxy in front of the moto server, and an EC2 client (as the pool's) through it."""
    with AwsProxy(moto_endpoint) as proxy:
        yield proxy, AwsClients(Settings(aws_endpoint_url=proxy.url), config=EC2_CLIENT_CONFIG).ec2


def test_describe_reads_the_market_and_zone(ec2, pool_name):
    spot = create_local_instance(ec2, pool_name, market="spot")
    on_demand = create_local_instance(ec2, pool_name)
    described = {i.instance_id: i for i in InstancePool(ec2, pool_name).describe()}
    assert (described[spot].market, described[on_demand].market) == ("spot", "on-demand")
    assert described[spot].zone.startswith("us-east-1")


@pytest.mark.parametrize("error, code", [("capacity", "InsufficientInstanceCapacity"),
                                         ("spot_capacity", "UnfulfillableCapacity")])
def test_a_refused_spot_start_is_a_capacity_error_and_keeps_its_type(ec2, ec2_proxy, pool_name, error, code):
    proxy, through_proxy = ec2_proxy
    spot = create_local_instance(ec2, pool_name, market="spot")
    proxy.fail(operation="StartInstances", body=spot, error=error)
    sleeps = Sleeps()
    pool = InstancePool(through_proxy, pool_name, fallback_types=("g6e.4xlarge",), sleep=sleeps)
    with pytest.raises(CapacityError) as caught:
        pool.start(spot)
    assert caught.value.reason.startswith(f"{code}: ") and [k for k, _ in caught.value.reasons] == ["g6e.2xlarge"]
    # A spot instance keeps its request's type: no fallback type is tried, and nothing is retried at once.
    assert proxy.operations["ModifyInstanceAttribute"] == 0 and proxy.operations["StartInstances"] == 1
    assert sleeps == [] and state_of(ec2, spot) == ("stopped", "g6e.2xlarge")
    assert pool.start(spot) == STARTED  # the next check finds capacity again
