"""What the API reads and does of the GPU lifecycle: the one module of lifecycle that webapp imports."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, Callable

from gpuorch.aws.clients import AwsClients
from gpuorch.jobs.store import JobStore
from gpuorch.settings import Settings
from lifecycle.live.check import LifecycleStatus, StatusStore
from lifecycle.advice import compare_period
from lifecycle.live.chargeback import seconds_to_next_month
from lifecycle.live.costs import (
    MAX_SPAN, Period, PeriodError, owner_month_spend, parse_period, period_costs, run_log_for,
)
from lifecycle.live.health import HOST_VERDICTS, REFUSED, gpu_instances_detail
from lifecycle.live.heartbeats import HEARTBEAT_TTL_S, HeartbeatStore
from lifecycle.live.refusals import RefusalStore
from lifecycle.live.pool import (EC2_CLIENT_CONFIG, CapacityError, Ec2Unavailable, InstancePool, PoolInstance,
                                 UnknownInstance)
from lifecycle.decision import budget_refusal
from lifecycle.model import INSTANCE_STATES, MISSED_REPORTS, stale_after_s
from lifecycle.prices import region_prices

__all__ = [
    "HOST_VERDICTS", "INSTANCE_STATES", "MAX_SPAN", "MISSED_REPORTS", "REFUSED", "CapacityError", "Ec2Unavailable",
    "GpuLifecycle", "LifecycleStatus", "Period", "PeriodError", "PoolInstance", "UnknownInstance", "parse_period",
    "seconds_to_next_month",
]

# A lifecycle check that has not run for this long at least reads as stale, however often beat asks for one.
MIN_CHECK_STALE_S = 60.0


class GpuLifecycle:
    """The lifecycle's records in the control table (read with `dynamodb`) and the GPU pool, for one API process."""

    def __init__(self, settings: Settings, dynamodb, *, clock: Callable[[], datetime]):
        self.settings = settings
        self._dynamodb = dynamodb
        self._table = settings.control_table
        self.clock = clock

    def last_check(self) -> LifecycleStatus | None:
        """What the last lifecycle check decided (None before the first)."""
        return StatusStore(self._dynamodb, self._table).read()

    def month_spend(self, now: datetime) -> float:
        """This month's GPU spend so far, in dollars."""
        return run_log_for(self._dynamodb, self._table, self.settings.region).month_spend(now)

    def costs(self, jobs: JobStore, period: Period, now: datetime, *, by_owner: bool = False) -> dict[str, Any]:
        """The GPU cost document of `period` (lifecycle.live.costs.cost_document); with `by_owner`, each owner's
        part of it (lifecycle.live.chargeback)."""
        return period_costs(run_log_for(self._dynamodb, self._table, self.settings.region), jobs, period, now=now,
                            monthly_budget_usd=self.settings.monthly_budget_usd, by_owner=by_owner)

    def compare(self, jobs: JobStore, period: Period, now: datetime) -> dict[str, Any]:
        """The period's jobs beside the replaced rule, fixed idle times, the learning policy and serverless
        (lifecycle.advice)."""
        return compare_period(run_log_for(self._dynamodb, self._table, self.settings.region), jobs, period, now=now)

    def owner_month_spend(self, jobs: JobStore, owner: str, now: datetime) -> float:
        """What `owner`'s jobs cost this UTC month so far."""
        return owner_month_spend(run_log_for(self._dynamodb, self._table, self.settings.region), jobs, owner, now)

    def start_over_budget(self, instance_type: str, now: datetime) -> str | None:
        """Why starting a stopped instance of `instance_type` would pass the monthly budget, as the lifecycle judges
        its own starts (None: it would not, or there is no budget)."""
        budget = self.settings.monthly_budget_usd or None
        if budget is None:
            return None
        return budget_refusal(self.month_spend(now), region_prices(self.settings.region).hourly(instance_type), budget)

    def check_stale_after_s(self) -> float:
        """How old the last lifecycle check may be before the control worker or beat reads as down."""
        return max(MIN_CHECK_STALE_S, stale_after_s(self.settings.lifecycle_check_seconds))

    def instances_health(self, now: datetime) -> tuple[bool, dict[str, Any]]:
        """(any instance stale, each instance's state, heartbeats, refusal and verdict): three reads of the control
        table, no EC2 call (the states are those the last check saw)."""
        reports = HeartbeatStore(self._dynamodb, self._table, ttl_s=HEARTBEAT_TTL_S, clock=self.clock).all()
        return gpu_instances_detail(self.last_check(), reports, now,
                                    stale_after_s=stale_after_s(self.settings.heartbeat_seconds),
                                    boot_grace_s=self.settings.health_boot_grace_seconds,
                                    refusals=self._refusals().all())

    def release(self, instance_id: str) -> str | None:
        """An operator's start lifts the instance's hold: its refusal is deleted; what it said, if it had one."""
        refusal = self._refusals().release(instance_id)
        return None if refusal is None else str(refusal)

    def _refusals(self) -> RefusalStore:
        return RefusalStore(self._dynamodb, self._table, instance_arn=self._aws.instance_arn)

    @functools.cached_property
    def _aws(self) -> AwsClients:
        """Clients that name an instance by its ARN (keys of the refusals): the account is asked of STS once, at the
        first release, never to read."""
        return AwsClients(self.settings)

    @functools.cached_property
    def pool(self) -> InstancePool:
        """The GPU pool as `gpuorch gpu` reaches it, built on first use (operator routes only).

        No fallback instance types: an operator's start starts the instance as it is; changing its type on a
        capacity shortage is the lifecycle's (and needs a permission the API's role does not have)."""
        return InstancePool(AwsClients(self.settings, EC2_CLIENT_CONFIG).ec2, self.settings.gpu_pool)
