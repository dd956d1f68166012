"""The lifecycle check on moto's EC2 with a spot and an on-demand instance: spot preferred at moto's spot price, the
on-demand fallback started in the same check when EC2 refuses spot (refused through the fault-injecting proxy), spot
held off after a refusal or an interruption, and each said in the log, the metrics and the status /health reads."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry

from gpuorch.aws.clients import AwsClients
from gpuorch.settings import Settings
from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.check import LifecycleCheck, StatusStore
from lifecycle.live.heartbeats import HeartbeatStore
from lifecycle.live.lease import Lease
from lifecycle.live.market import MarketMemory, SpotPrices
from lifecycle.live.metrics import LifecycleMetrics
from lifecycle.live.pool import EC2_CLIENT_CONFIG, InstancePool
from lifecycle.live.runs import RunLog
from lifecycle.live.planner import FixedPlanner
from lifecycle.model import Policy
from lifecycle.schedule import parse_windows
from tests.lifecycle.live.conftest import Clock
from tests.support.aws_proxy import AwsProxy

HOLD_S = 1800


@pytest.fixture
def proxy(moto_endpoint):
    with AwsProxy(moto_endpoint) as running:
        yield running


@pytest.fixture
def pool_pair(ec2, pool_name) -> tuple[str, str]:
    """A stopped spot instance and a stopped on-demand one, in one pool."""
    return create_local_instance(ec2, pool_name, market="spot"), create_local_instance(ec2, pool_name)


class Harness:
    """A check whose EC2 calls go through the proxy, with its own metrics and a clock moved by hand."""

    def __init__(self, provisioned, proxy, pool_name, *, spot_max_share: float = 0.8, planner=None):
        settings, aws = provisioned.settings, provisioned.aws
        # EC2 (moto) stamps launch times with the real time: the clock starts there and is then moved by hand.
        self.clock = Clock(datetime.now(timezone.utc))
        self.registry = CollectorRegistry()
        self.aws, self.settings = aws, settings
        ec2 = AwsClients(Settings(aws_endpoint_url=proxy.url), config=EC2_CLIENT_CONFIG).ec2
        table = settings.control_table
        self.memory = MarketMemory(aws.dynamodb, table)
        self.heartbeats = HeartbeatStore(aws.dynamodb, table, ttl_s=3600, clock=self.clock,
                                         instance_arn=aws.instance_arn)
        self.runs = RunLog(aws.dynamodb, table, clock=self.clock)
        self.pool = InstancePool(ec2, pool_name, sleep=lambda _s: None)
        self.check = LifecycleCheck(
            pool=self.pool, heartbeats=self.heartbeats, runs=self.runs,
            lease=Lease(aws.dynamodb, table, "lifecycle", owner="test", ttl_s=60, clock=self.clock),
            status=StatusStore(aws.dynamodb, table), sqs=aws.sqs, queue_url=aws.queue_url(settings.gpu_queue),
            policy=Policy(idle_stop_s=60, spot_max_share=spot_max_share, spot_hold_s=HOLD_S),
            hourly_price=lambda _type: 2.24, clock=self.clock, metrics=LifecycleMetrics(self.registry),
            spot_prices=SpotPrices(ec2, clock=self.clock), market=self.memory, planner=planner,
        )

    def work(self, jobs: int = 1) -> None:
        for n in range(jobs):
            self.aws.sqs.send_message(QueueUrl=self.aws.queue_url(self.settings.gpu_queue), MessageBody=f"job {n}")

    def no_work(self) -> None:
        self.aws.sqs.purge_queue(QueueUrl=self.aws.queue_url(self.settings.gpu_queue))

    def state(self, instance_id: str) -> str:
        return self.pool.get(instance_id).state

    def value(self, name: str, **labels) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def status(self):
        return StatusStore(self.aws.dynamodb, self.settings.control_table).read()


def test_spot_is_preferred_at_its_price_and_said(provisioned, proxy, pool_name, pool_pair, caplog):
    spot, on_demand = pool_pair
    harness = Harness(provisioned, proxy, pool_name)
    harness.work()
    with caplog.at_level(logging.INFO, logger="lifecycle.live.check"):
        decision = harness.check.run()

    [start] = decision.of_kind("start")
    assert (start.instance_id, start.market, start.alternative) == (spot, "spot", on_demand)
    assert (harness.state(spot), harness.state(on_demand)) == ("running", "stopped")
    # moto answers every spot price with $0.00001/h
    assert "spot $0.0000/h, 0% of on-demand $2.24/h" in caplog.text
    assert harness.value("gpuorch_gpu_starts_total", market="spot") == 1
    assert harness.value("gpuorch_gpu_starts_total", market="on-demand") == 0
    status = harness.status()
    assert status.market["last_start"]["instance_id"] == spot and status.market["last_start"]["market"] == "spot"
    assert status.market["last_fallback"] is None
    assert {i["instance_id"]: i["market"] for i in status.instances} == {spot: "spot", on_demand: "on-demand"}
    # The spot run is priced at the spot price the check read.
    [run] = harness.runs.records(harness.clock() - timedelta(hours=1), harness.clock() + timedelta(hours=1))
    assert (run.instance_id, run.market, run.hourly_usd) == (spot, "spot", 0.00001)


def test_the_status_says_what_the_next_start_would_pay(provisioned, proxy, pool_name, pool_pair):
    spot, on_demand = pool_pair
    harness = Harness(provisioned, proxy, pool_name)
    harness.check.run()  # no work: nothing starts, and the status says what a start would take

    upcoming = harness.status().market["next_start"]
    assert (upcoming["instance_id"], upcoming["market"], upcoming["hourly_usd"]) == (spot, "spot", 0.00001)

    dear = Harness(provisioned, proxy, pool_name, spot_max_share=0.0)
    dear.check.run()
    upcoming = dear.status().market["next_start"]
    assert (upcoming["instance_id"], upcoming["market"], upcoming["hourly_usd"]) == (on_demand, "on-demand", 2.24)


def test_a_share_of_0_starts_on_demand_and_says_why(provisioned, proxy, pool_name, pool_pair, caplog):
    spot, on_demand = pool_pair
    harness = Harness(provisioned, proxy, pool_name, spot_max_share=0.0)
    harness.work()
    with caplog.at_level(logging.WARNING, logger="lifecycle.live.check"):
        harness.check.run()

    assert (harness.state(spot), harness.state(on_demand)) == ("stopped", "running")
    assert f"fallback (spot_price): on-demand {on_demand} started instead of spot {spot}" in caplog.text
    assert harness.value("gpuorch_gpu_fallbacks_total", reason="spot_price") == 1
    fallback = harness.status().market["last_fallback"]
    assert (fallback["instance_id"], fallback["instead_of"], fallback["reason"]) == (on_demand, spot, "spot_price")
    assert "not under 0%" in fallback["detail"]


def test_a_refused_spot_start_starts_the_on_demand_fallback_in_the_same_check(provisioned, proxy, pool_name,
                                                                               pool_pair, caplog):
    spot, on_demand = pool_pair
    harness = Harness(provisioned, proxy, pool_name)
    proxy.fail(operation="StartInstances", body=spot, error="capacity")
    harness.work()
    with caplog.at_level(logging.WARNING, logger="lifecycle.live.check"):
        harness.check.run()

    assert (harness.state(spot), harness.state(on_demand)) == ("stopped", "running")
    assert f"cannot start {spot} now" in caplog.text and "InsufficientInstanceCapacity" in caplog.text
    assert f"fallback (spot_refused): on-demand {on_demand} started instead of spot {spot}" in caplog.text
    assert harness.value("gpuorch_gpu_start_refusals_total") == 1
    assert harness.value("gpuorch_gpu_fallbacks_total", reason="spot_refused") == 1
    assert harness.value("gpuorch_gpu_starts_total", market="on-demand") == 1
    status = harness.status()
    assert status.market["last_fallback"]["reason"] == "spot_refused"
    assert status.market["last_start"]["instance_id"] == on_demand
    setback = harness.memory.read().setbacks[spot]
    assert setback.kind == "refused" and "InsufficientInstanceCapacity" in setback.reason

    # The on-demand instance idles out and stops; once the hold has passed, new work goes to spot again.
    harness.no_work()
    harness.clock.advance(HOLD_S + 60)
    harness.check.run()
    assert harness.state(on_demand) == "stopped"
    harness.work()
    harness.check.run()
    assert harness.state(spot) == "running"


def test_within_the_hold_spot_is_not_asked_for(provisioned, proxy, pool_name, pool_pair):
    spot, on_demand = pool_pair
    harness = Harness(provisioned, proxy, pool_name)
    proxy.fail(operation="StartInstances", body=spot, error="spot_capacity")
    harness.work()
    harness.check.run()
    harness.no_work()
    harness.clock.advance(120)
    harness.check.run()  # idle 120 s > 60 s: the on-demand instance stops
    assert harness.state(on_demand) == "stopped"
    starts_of_spot = proxy.operations["StartInstances"]

    harness.work()
    harness.clock.advance(60)
    decision = harness.check.run()

    [start] = decision.of_kind("start")
    assert (start.instance_id, start.fallback, start.instead_of) == (on_demand, "spot_refused", spot)
    assert proxy.operations["StartInstances"] == starts_of_spot + 1  # the on-demand start alone
    assert harness.value("gpuorch_gpu_fallbacks_total", reason="spot_refused") == 2


def test_an_interruption_starts_the_on_demand_replacement_and_marks_the_run(provisioned, proxy, pool_name,
                                                                             pool_pair, caplog):
    spot, on_demand = pool_pair
    harness = Harness(provisioned, proxy, pool_name)
    harness.work()
    harness.check.run()
    assert harness.state(spot) == "running"
    # The spot worker reports EC2's notice while it runs a job; the job it gave back waits in the queue.
    notice = harness.clock() + timedelta(minutes=2)
    harness.heartbeats.beat(spot, ["job-1"], True, harness.clock(), interruption_at=notice)
    harness.work()

    with caplog.at_level(logging.WARNING, logger="lifecycle.live.check"):
        decision = harness.check.run()
        harness.check.run()  # a second look counts nothing twice

    assert decision.interrupted == (spot,) and decision.starts == (on_demand,)
    assert harness.state(on_demand) == "running"
    assert f"{spot} is interrupted" in caplog.text
    assert harness.value("gpuorch_gpu_interruptions_total") == 1
    assert harness.value("gpuorch_gpu_fallbacks_total", reason="spot_interrupted") == 1  # the replacement
    assert harness.memory.read().setbacks[spot].kind == "interrupted"
    # EC2 stops it at the notice's time: its run closes, counted as interrupted.
    harness.aws.ec2.stop_instances(InstanceIds=[spot])
    harness.clock.advance(120)
    harness.check.run()
    records = harness.runs.records(harness.clock() - timedelta(hours=1), harness.clock() + timedelta(hours=1))
    [spot_run] = [r for r in records if r.instance_id == spot]
    assert spot_run.stopped_at is not None and spot_run.interrupted_at == notice


def test_a_warm_window_starts_the_cheap_spot_instance_with_no_job_waiting(provisioned, proxy, pool_name, pool_pair,
                                                                           caplog):
    spot, on_demand = pool_pair
    policy = Policy(idle_stop_s=60, spot_hold_s=HOLD_S)
    always = parse_windows("Mon-Sun 00:00-24:00 UTC")
    harness = Harness(provisioned, proxy, pool_name, planner=FixedPlanner(policy, always))
    with caplog.at_level(logging.INFO, logger="lifecycle.live.check"):
        decision = harness.check.run()
        harness.clock.advance(3600)
        again = harness.check.run()

    [start] = decision.of_kind("start")
    assert start.instance_id == spot and "min_instances=1" in start.reason
    assert (harness.state(spot), harness.state(on_demand)) == ("running", "stopped")
    assert not again.stops  # idle for an hour, kept: the window is open
    # The plan is logged once, not at every check.
    assert caplog.text.count("lifecycle policy: fixed: idle 60 s; warm window Mon-Sun 00:00-24:00 UTC") == 1
