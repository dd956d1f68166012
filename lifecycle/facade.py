"""What the API reads and does of the GPU lifecycle: the one module of lifecycle that webapp imports."""

from __future__ import annotations

import functools
import logging
import statistics
from datetime import datetime, timedelta
from typing import Any, Callable

from gpuorch.jobs import states
from gpuorch.jobs.store import Job

from gpuorch.aws.clients import AwsClients
from gpuorch.jobs.store import JobStore
from gpuorch.settings import Settings
from lifecycle.decision import ACTIVE_STATES
from gpuorch.fresh import FreshCache
from lifecycle.live.check import LifecycleStatus, StatusStore
from lifecycle.advice import Deployment, compare_period
from lifecycle.live.chargeback import seconds_to_next_month
from lifecycle.live.costs import (
    MAX_SPAN, Period, PeriodError, owner_month_spend, parse_period, period_costs, run_log_for,
)
from lifecycle.live.health import HOST_VERDICTS, REFUSED, gpu_instances_detail
from lifecycle.live.heartbeats import HEARTBEAT_TTL_S, HeartbeatStore
from lifecycle.live.refusals import RefusalStore
from lifecycle.live.pool import (EC2_CLIENT_CONFIG, CapacityError, Ec2Unavailable, InstancePool, PoolInstance,
                                 UnknownInstance)
from lifecycle.eta import (DEFAULT_COLD_START, PHASES, GpuView, Whereabouts, WorkflowTimes, actual, estimate,
                           given_back, observed_times, times_of, waiting_again, whereabouts, work_ahead_s)
from lifecycle.live.costs import measured_cold_starts
from lifecycle.decision import budget_refusal
from lifecycle.model import INSTANCE_STATES, MISSED_REPORTS, stale_after_s
from lifecycle.prices import region_prices

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_STATES", "HOST_VERDICTS", "INSTANCE_STATES", "MAX_SPAN", "MISSED_REPORTS", "PHASES", "REFUSED",
    "CapacityError", "Ec2Unavailable", "GpuLifecycle", "LifecycleStatus", "Period", "PeriodError", "PoolInstance",
    "UnknownInstance", "Whereabouts", "actual", "parse_period", "seconds_to_next_month",
]

# A lifecycle check that has not run for this long at least reads as stale, however often beat asks for one.
MIN_CHECK_STALE_S = 60.0
# How long one API process reuses what it read of the GPU, the workflows' observed times, and the measured cold start:
# an answer's eta moves with the GPU within seconds; the others change slowly.
GPU_VIEW_TTL_S = 2.0
# The queue (its queued and running jobs, up to QUEUE_READ each) is read once for every answer in this while: each
# waiting job's GET, list and event stream places itself in the same read rather than reading the queue again.
QUEUE_TTL_S = 2.0
TIMES_TTL_S = 60.0
COLD_START_TTL_S = 600.0
# The finished jobs a workflow's times are the medians of, and how far back cold starts are measured.
OBSERVED_JOBS = 200
COLD_START_WINDOW = timedelta(days=7)
# The queued jobs read to place a job in the queue: a job further back is told it is behind this many.
QUEUE_READ = 1000


class GpuLifecycle:
    """The lifecycle's records in the control table (read with `dynamodb`) and the GPU pool, for one API process."""

    def __init__(self, settings: Settings, dynamodb, *, clock: Callable[[], datetime]):
        self.settings = settings
        self._dynamodb = dynamodb
        self._table = settings.control_table
        self.clock = clock
        self._cache = FreshCache()

    # Where a job is and what it will cost (lifecycle.eta), from the lifecycle's real state.

    def gpu_view(self, jobs: JobStore) -> GpuView:
        """The GPU now: ready instances (a fresh ready heartbeat), starting ones (pending, or running without one)
        and when each should be ready, why none may start, the measured cold start and the price."""
        # Made with the time it is made at: a refresh comes later than the request that asked first.
        return self._cache.get("gpu", GPU_VIEW_TTL_S, lambda: self._gpu_view(jobs, self.clock()))

    def _gpu_view(self, jobs: JobStore, now: datetime) -> GpuView:
        status = self.last_check()
        reports = HeartbeatStore(self._dynamodb, self._table, ttl_s=HEARTBEAT_TTL_S, clock=self.clock).all()
        fresh_s = stale_after_s(self.settings.heartbeat_seconds)
        beats = [r.heartbeat for r in reports if (now - r.heartbeat.at).total_seconds() <= fresh_s]
        instances = status.instances if status else ()
        # A worker told of its spot instance's interruption takes no job: its instance is neither ready nor starting.
        interrupted = {beat.instance_id for beat in beats if beat.interruption_at is not None}
        ready_ids = {beat.instance_id for beat in beats if beat.ready} - interrupted
        cold_start = self.cold_start_s(jobs)
        held = set(status.held) if status else set()
        starting = []
        for instance in instances:
            if instance["instance_id"] in ready_ids | held | interrupted:
                continue
            if instance.get("state") in ("pending", "running"):
                launched = instance.get("launched_at")
                since = (now - datetime.fromisoformat(launched)).total_seconds() if launched else 0.0
                starting.append(max(0.0, cold_start - since))
        blocked = status.blocked_reason if status is not None else None
        # With no worker reporting, nothing is known of what runs (rather than that nothing does).
        running_jobs = frozenset(job for beat in beats for job in beat.running_jobs) if beats else None
        return GpuView(ready=len(ready_ids - held), starting_in_s=tuple(starting), blocked=blocked,
                       cold_start_s=cold_start, billed_boot_s=max(0.0, cold_start - DEFAULT_COLD_START.ec2_pending_s),
                       hourly_usd=self.hourly_usd(status),
                       running_jobs=running_jobs)

    def hourly_usd(self, status: LifecycleStatus | None) -> float:
        """What the GPU costs an hour: the dearest price the open runs pay (a spot run's is the spot price it opened
        at); with none open, what the last check found the next start would pay (a spot start its spot price); before
        any check, the on-demand price of the pool's dearest type."""
        open_runs, _ = run_log_for(self._dynamodb, self._table, self.settings.region).heads()
        if open_runs:
            return max(run.hourly_usd for run in open_runs)
        upcoming = (status.market or {}).get("next_start") if status is not None else None
        if upcoming:
            return float(upcoming["hourly_usd"])
        prices = region_prices(self.settings.region)
        instances = status.instances if status is not None else ()
        return max((prices.hourly(i.get("instance_type") or self.settings.gpu_instance_type) for i in instances),
                   default=prices.hourly(self.settings.gpu_instance_type))

    def cold_start_s(self, jobs: JobStore) -> float:
        """The median cold start of the last week's runs (from a start to the first job that waited for it), else
        the cost model's."""
        def measure() -> float:
            now = self.clock()
            start = now - COLD_START_WINDOW
            records = run_log_for(self._dynamodb, self._table, self.settings.region).records(start, now, now=now)
            finished = jobs.finished_between(start, now, created_since=start - timedelta(days=1))
            boots = measured_cold_starts(records, finished, now)
            return statistics.median(boots) if boots else DEFAULT_COLD_START.total_s

        return self._cache.get("cold_start", COLD_START_TTL_S, measure)

    def workflow_times(self, jobs: JobStore) -> dict[str, WorkflowTimes]:
        """Each workflow's observed GPU and run seconds: the medians of its latest succeeded jobs."""
        def observe() -> dict[str, WorkflowTimes]:
            recent, _ = jobs.list(status=states.SUCCEEDED, limit=OBSERVED_JOBS)
            return observed_times((job.workflow, job.gpu_seconds, _run_seconds(job)) for job in recent)

        return self._cache.get("times", TIMES_TTL_S, observe)

    def locate(self, jobs: JobStore, wanted: list[Job], now: datetime) -> dict[str, Whereabouts]:
        """Where each queued or running job of `wanted` is: one read of the queued jobs and one of the running ones,
        shared by the process's answers for QUEUE_TTL_S."""
        if not any(job.status in (states.QUEUED, states.RUNNING) for job in wanted):
            return {}
        gpu, times = self.gpu_view(jobs), self.workflow_times(jobs)
        queue, running = self._cache.get("queue", QUEUE_TTL_S, lambda: (jobs.oldest(states.QUEUED, QUEUE_READ),
                                                                         jobs.oldest(states.RUNNING, QUEUE_READ)))
        running_left = [times_of(times, job.workflow).run_s - _elapsed(job, now) for job in running]
        order = {job.job_id: n for n, job in enumerate(queue)}
        grace_s = stale_after_s(self.settings.heartbeat_seconds)
        found = {}
        for job in wanted:
            own = times_of(times, job.workflow)
            if job.status == states.QUEUED:
                ahead = [j.workflow for j in queue[:order.get(job.job_id, len(queue))]]
                work = work_ahead_s(ahead, running_left, times)
                found[job.job_id] = whereabouts(job.status, own, ahead=len(ahead), work_ahead=work, gpu=gpu)
            elif job.status == states.RUNNING and given_back(job.job_id, _elapsed(job, now), gpu, grace_s=grace_s):
                work = work_ahead_s([], running_left, times)
                found[job.job_id] = waiting_again(whereabouts(states.QUEUED, own, ahead=0, work_ahead=work, gpu=gpu))
            elif job.status == states.RUNNING:
                found[job.job_id] = whereabouts(job.status, own, ahead=0, work_ahead=0.0, gpu=gpu,
                                                running_for_s=_elapsed(job, now))
        return found

    def submission_estimate(self, jobs: JobStore, workflow: str, *, ahead: int, now: datetime) -> dict[str, Any]:
        """What a job about to be queued behind `ahead` others (the GPU queue's depth) should take and cost; no read
        but what the caches hold after the first."""
        gpu, times = self.gpu_view(jobs), self.workflow_times(jobs)
        own = times_of(times, workflow)
        where = whereabouts(states.QUEUED, own, ahead=ahead, work_ahead=ahead * own.run_s, gpu=gpu)
        return estimate(own, where, gpu, now)


    def last_check(self) -> LifecycleStatus | None:
        """What the last lifecycle check decided (None before the first)."""
        return StatusStore(self._dynamodb, self._table).read()

    def recent_check(self) -> LifecycleStatus | None:
        """What the last lifecycle check decided, as this process read it within GPU_VIEW_TTL_S: what the answers
        about jobs say of it (why one waits) moves with their place and eta."""
        return self._cache.get("check", GPU_VIEW_TTL_S, self.last_check)

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
        return compare_period(run_log_for(self._dynamodb, self._table, self.settings.region), jobs, period, now=now,
                              deployment=Deployment.of(self.settings))

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


def _elapsed(job: Job, now: datetime) -> float:
    return (now - datetime.fromisoformat(job.started_at)).total_seconds() if job.started_at else 0.0


def _run_seconds(job: Job) -> float | None:
    if not (job.started_at and job.finished_at):
        return None
    return (datetime.fromisoformat(job.finished_at) - datetime.fromisoformat(job.started_at)).total_seconds()
