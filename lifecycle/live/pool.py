"""The GPU pool on EC2: describe, start and stop the instances tagged into it, idempotent and filtered by state.

Errors, caught by meaning (their branches of gpuorch.errors' tree in brackets):

    UnknownInstance   (Conflict)      the id names no live instance of this pool (never, or no longer)
    CapacityError     (Unavailable)   EC2 will not start it now for want of capacity (or, for spot, of price or
                                      quota) for the instance type(s) tried; `.reasons` says why
    Ec2Unavailable    (Unavailable)   EC2 kept throttling, failing or not answering after the retries
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Callable

from botocore.config import Config
from botocore.exceptions import ClientError
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from gpuorch.aws.failures import error_code, is_transient
from gpuorch.errors import Conflict, Unavailable
from lifecycle.model import INSTANCE_STATES, ON_DEMAND, SPOT, Instance

log = logging.getLogger(__name__)

POOL_TAG = "gpuorch:pool"
# Every state but terminated: a terminated instance lingers in DescribeInstances for about an hour.
# The pool retries (see is_retryable), so its client must not: botocore's standard mode would also
# retry InsufficientInstanceCapacity (an HTTP 500) and multiply the attempts. Build the pool's client
# with this, e.g. `AwsClients(settings, config=EC2_CLIENT_CONFIG).ec2`.
EC2_CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
LIVE_STATES = tuple(s for s in INSTANCE_STATES if s != "terminated")

CAPACITY_CODE = "InsufficientInstanceCapacity"
# What else EC2 answers when it will not start a spot instance now (the EC2 API reference's error codes):
# no spare spot capacity (InsufficientInstanceCapacity too: "There is no Spot capacity available that matches your
# request"), a spot price over the request's maximum price, the account's spot instance quota reached. Like a
# capacity shortage they are not retried at once: a later check tries again, and the on-demand fallback starts now.
SPOT_REFUSAL_CODES = frozenset({
    "InsufficientCapacity", "UnfulfillableCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded",
})
REFUSAL_CODES = frozenset({CAPACITY_CODE}) | SPOT_REFUSAL_CODES
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})
WRONG_STATE_CODE = "IncorrectInstanceState"

# What start() and stop() return.
STARTED = "started"
ALREADY_RUNNING = "already running"
PENDING = "pending"
WAIT = "wait"  # in a transition (stopping for a start, pending for a stop): ask again once it settles
STOPPING = "stopping"
ALREADY_STOPPING = "already stopping"
ALREADY_STOPPED = "already stopped"
# Plan steps that are not outcomes.
CALL = "call"
GONE = "gone"

START_PLAN: dict[str, str] = {
    "pending": PENDING,
    "running": ALREADY_RUNNING,
    "stopping": WAIT,
    "stopped": CALL,
    "shutting-down": GONE,
    "terminated": GONE,
}
STOP_PLAN: dict[str, str] = {
    "pending": WAIT,
    "running": CALL,
    "stopping": ALREADY_STOPPING,
    "stopped": ALREADY_STOPPED,
    "shutting-down": GONE,
    "terminated": GONE,
}


class UnknownInstance(Conflict):
    """The id names no live instance of this pool."""


class CapacityError(Unavailable):
    """EC2 had no capacity for any instance type tried; `reasons` pairs each type with EC2's message."""

    def __init__(self, instance_id: str, reasons: tuple[tuple[str, str], ...]):
        self.instance_id = instance_id
        self.reasons = reasons
        tried = "; ".join(f"{kind}: {why}" for kind, why in reasons)
        super().__init__(f"{instance_id}: no capacity ({tried})")

    @property
    def reason(self) -> str:
        """EC2's message for the last instance type tried."""
        return self.reasons[-1][1] if self.reasons else CAPACITY_CODE


class Ec2Unavailable(Unavailable):
    """EC2 throttled, failed or did not answer every attempt; retrying later may succeed."""


def is_retryable(exc: BaseException) -> bool:
    """A transient AWS failure (throttled, a server error, unreachable: gpuorch.aws.failures), but no refusal.

    EC2 answers InsufficientInstanceCapacity (and InsufficientCapacity) with HTTP 500, but retrying at once rarely
    finds capacity: it is the caller's to handle (a fallback type or market, or a later check).
    """
    return is_transient(exc) and error_code(exc) not in REFUSAL_CODES


def plan_start(state: str) -> str:
    """What start() does for an instance in `state`: CALL StartInstances, GONE, or the outcome to return."""
    return START_PLAN[state]


def plan_stop(state: str) -> str:
    """What stop() does for an instance in `state`: CALL StopInstances, GONE, or the outcome to return."""
    return STOP_PLAN[state]


def start_candidates(current: str, preferred: str | None, fallbacks: tuple[str, ...]) -> tuple[str, ...]:
    """The instance types a start tries, in order, each once: the preferred (else current) one, then the fallbacks."""
    ordered = (preferred or current, *fallbacks)
    return tuple(dict.fromkeys(ordered))


@dataclass(frozen=True)
class PoolInstance(Instance):
    """An Instance with its Availability Zone, where its spot price is read."""

    zone: str | None = None


def _tag(tags: list[dict], key: str) -> str | None:
    return next((t["Value"] for t in tags or () if t["Key"] == key), None)


def _instance(item: dict) -> PoolInstance:
    launched = item.get("LaunchTime")
    return PoolInstance(
        instance_id=item["InstanceId"],
        state=item["State"]["Name"],
        instance_type=item["InstanceType"],
        launched_at=launched.astimezone(timezone.utc) if launched else None,
        market=SPOT if item.get("InstanceLifecycle") == SPOT else ON_DEMAND,
        zone=item.get("Placement", {}).get("AvailabilityZone"),
    )


class InstancePool:
    """The instances tagged `gpuorch:pool = <pool>`; every call is retried on throttling and server errors.

    Start and stop fire and return: they never wait for a state change. `fallback_types` are instance
    types tried, in order, when EC2 has no capacity for an on-demand instance's own (or `preferred_type`); a spot
    instance keeps the type of its persistent request (its fallback is an on-demand instance, the lifecycle's).
    """

    def __init__(
        self,
        ec2_client,
        pool: str,
        *,
        fallback_types: tuple[str, ...] = (),
        preferred_type: str | None = None,
        attempts: int = 5,
        max_backoff_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._ec2 = ec2_client
        self.pool = pool
        self.fallback_types = tuple(fallback_types)
        self.preferred_type = preferred_type
        self._retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.5, max=max_backoff_s),
            sleep=sleep,
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )

    def _call(self, operation: str, **kwargs):
        method = getattr(self._ec2, operation)
        try:
            return self._retrying.copy()(method, **kwargs)
        except Exception as exc:
            if is_retryable(exc):
                raise Ec2Unavailable(f"ec2 {operation}: {exc}") from exc
            raise

    def _pool_filter(self) -> dict:
        return {"Name": f"tag:{POOL_TAG}", "Values": [self.pool]}

    def describe(self) -> tuple[PoolInstance, ...]:
        """Every instance of the pool that is not terminated, by id."""
        found: list[PoolInstance] = []
        token = None
        while True:
            kwargs = {"Filters": [self._pool_filter(), {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]}
            if token:
                kwargs["NextToken"] = token
            page = self._call("describe_instances", **kwargs)
            found.extend(_instance(item) for r in page["Reservations"] for item in r["Instances"])
            token = page.get("NextToken")
            if not token:
                return tuple(sorted(found, key=lambda i: i.instance_id))

    def _raw(self, instance_id: str) -> dict | None:
        try:
            page = self._call("describe_instances", InstanceIds=[instance_id])
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        return next((item for r in page["Reservations"] for item in r["Instances"]), None)

    def get(self, instance_id: str) -> PoolInstance:
        """One instance of the pool; UnknownInstance when it is not one (or is terminated)."""
        item = self._raw(instance_id)
        if item is None or _tag(item.get("Tags"), POOL_TAG) != self.pool or item["State"]["Name"] == "terminated":
            raise UnknownInstance(f"{instance_id} is not a live instance of pool {self.pool!r}")
        return _instance(item)

    def start(self, instance_id: str) -> str:
        """Start a stopped instance; anything else returns what it is doing (no call is made)."""
        instance = self.get(instance_id)
        step = plan_start(instance.state)
        if step == GONE:
            raise UnknownInstance(f"{instance_id} is {instance.state}")
        if step != CALL:
            log.info("start %s: %s, nothing to do (%s)", instance_id, step, instance.state)
            return step
        return self._start_stopped(instance)

    def _start_stopped(self, instance: PoolInstance) -> str:
        instance_id = instance.instance_id
        candidates = (start_candidates(instance.instance_type, self.preferred_type, self.fallback_types)
                      if instance.market == ON_DEMAND else (instance.instance_type,))
        current = instance.instance_type
        refused: list[tuple[str, str]] = []
        for kind in candidates:
            try:
                if kind != current:
                    # Only a stopped instance can change type; a failed start leaves it stopped.
                    self._call("modify_instance_attribute", InstanceId=instance_id, InstanceType={"Value": kind})
                    current = kind
                self._call("start_instances", InstanceIds=[instance_id])
            except ClientError as exc:
                if error_code(exc) == WRONG_STATE_CODE:
                    return self._raced(instance_id, exc, plan_start)
                if error_code(exc) not in REFUSAL_CODES:
                    raise
                reason = f"{error_code(exc)}: {exc.response['Error'].get('Message') or 'no message'}"
                log.warning("start %s: no capacity for %s: %s", instance_id, kind, reason)
                refused.append((kind, reason))
                continue
            if not refused:
                log.info("start %s: StartInstances sent (%s)", instance_id, kind)
                return STARTED
            outcome = f"{STARTED} as {kind}; no capacity for {', '.join(k for k, _ in refused)}"
            log.warning("start %s: %s", instance_id, outcome)
            return outcome
        self._restore_type(instance_id, instance.instance_type, current)
        raise CapacityError(instance_id, tuple(refused))

    def _restore_type(self, instance_id: str, original: str, current: str) -> None:
        """After every type failed, put the instance back to the type it had, so no fallback sticks."""
        if current == original:
            return
        try:
            self._call("modify_instance_attribute", InstanceId=instance_id, InstanceType={"Value": original})
        except ClientError as exc:
            log.warning("start %s: could not restore instance type %s: %s", instance_id, original, exc)

    def _raced(self, instance_id: str, exc: ClientError, plan: Callable[[str], str]) -> str:
        """Another caller moved the instance between our describe and our call: report where it is now."""
        state = self.get(instance_id).state
        log.info("%s raced another caller (%s); now %s", instance_id, error_code(exc), state)
        step = plan(state)
        if step == GONE:
            raise UnknownInstance(f"{instance_id} is {state}")
        return WAIT if step == CALL else step

    def stop(self, instance_id: str) -> str:
        """Stop a running instance; anything else returns what it is doing (no call is made)."""
        instance = self.get(instance_id)
        step = plan_stop(instance.state)
        if step == GONE:
            raise UnknownInstance(f"{instance_id} is {instance.state}")
        if step != CALL:
            log.info("stop %s: %s, nothing to do (%s)", instance_id, step, instance.state)
            return step
        try:
            self._call("stop_instances", InstanceIds=[instance_id])
        except ClientError as exc:
            if error_code(exc) == WRONG_STATE_CODE:
                return self._raced(instance_id, exc, plan_stop)
            raise
        log.info("stop %s: StopInstances sent", instance_id)
        return STOPPING

    def tag(self, instance_id: str) -> str:
        """Adopt an existing instance into the pool; refused when it belongs to another pool."""
        item = self._raw(instance_id)
        if item is None or item["State"]["Name"] == "terminated":
            raise UnknownInstance(f"{instance_id} is not a live instance")
        owner = _tag(item.get("Tags"), POOL_TAG)
        if owner == self.pool:
            return f"already in pool {self.pool}"
        if owner is not None:
            raise Conflict(f"{instance_id} belongs to pool {owner!r}, not {self.pool!r}")
        self._call("create_tags", Resources=[instance_id], Tags=[{"Key": POOL_TAG, "Value": self.pool}])
        log.info("tag %s: adopted into pool %s", instance_id, self.pool)
        return f"tagged into pool {self.pool}"
