"""The cost report from what the tables hold (moto server): jobs finished in a period, runs at their prices."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs import states
from gpuorch.jobs.store import JobStore
from lifecycle.live.costs import LONGEST_JOB_LIFE, Period, cost_report, period_costs, run_log_for
from lifecycle.live.pool import PoolInstance
from lifecycle.live.runs import RunLog

from tests.lifecycle.live.conftest import Clock

# The test's own on-demand prices (lifecycle/prices.py has AWS's, which change): runs keep the price they opened with.
PRICES = {"g6e.2xlarge": 2.24, "g6.2xlarge": 0.978}

JUNE = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock(JUNE)


@pytest.fixture
def jobs(provisioned, clock) -> JobStore:
    return JobStore(provisioned.aws.dynamodb, provisioned.settings.job_table, ttl_seconds=86400, clock=clock)


@pytest.fixture
def run_log(dynamodb, control_table, clock) -> RunLog:
    return RunLog(dynamodb, control_table, prices=PRICES, clock=clock)


def at(hours: float) -> datetime:
    return JUNE + timedelta(hours=hours)


def finish(jobs: JobStore, clock: Clock, job_id: str, *, created: datetime, started: datetime | None,
           finished: datetime, status: str = states.SUCCEEDED, gpu_seconds: float | None = None) -> None:
    """A job record created, started and finished at those moments."""
    clock.now = created
    jobs.create(job_id, "camera-angle", {}, source="api")
    if started is not None:
        clock.now = started
        jobs.transition(job_id, states.RUNNING)
    clock.now = finished
    extra = {"gpu_seconds": gpu_seconds} if gpu_seconds is not None else {}
    jobs.transition(job_id, status, **extra, **({"error": "boom"} if status == states.FAILED else {}))


def record_run(run_log: RunLog, clock: Clock, instance_id: str, kind: str, start: datetime, stop: datetime) -> None:
    """A closed run, written as the lifecycle check writes it: opened when seen running, closed when seen stopped."""
    clock.now = start
    run_log.reconcile([PoolInstance(instance_id, "running", kind, start)])
    clock.now = stop
    run_log.reconcile([PoolInstance(instance_id, "stopped", kind, start)])


def test_finished_between_finds_succeeded_and_failed_jobs_by_their_finish(jobs, clock):
    finish(jobs, clock, "long-wait", created=at(-24 * 10), started=at(1), finished=at(1.1))  # waited 10 days
    finish(jobs, clock, "failed", created=at(2), started=at(2), finished=at(2.1), status=states.FAILED)
    finish(jobs, clock, "before", created=at(-2), started=at(-1.5), finished=at(-1))
    finish(jobs, clock, "after", created=at(9), started=at(9), finished=at(11))
    finish(jobs, clock, "cancelled", created=at(3), started=None, finished=at(3.5), status=states.CANCELLED)
    clock.now = at(4)
    jobs.create("queued", "camera-angle", {}, source="api")
    finish(jobs, clock, "at-the-end", created=at(9), started=at(9.5), finished=at(10))  # [start, end): excluded

    found = jobs.finished_between(at(0), at(10), created_since=at(0) - LONGEST_JOB_LIFE)

    assert [job.job_id for job in found] == ["long-wait", "failed"]
    narrow = jobs.finished_between(at(0), at(10), created_since=at(-1))
    assert [job.job_id for job in narrow] == ["failed"]  # the window of creation bounds the look-up


def test_cost_report_prices_each_run_and_counts_the_jobs_of_the_period(jobs, run_log, clock):
    # An hour of a g6e.2xlarge ($2.24/h) from 01:00, whose first job waited for it and started 135 s in.
    record_run(run_log, clock, "i-a", "g6e.2xlarge", at(1), at(2))
    # Half an hour of a g6.2xlarge ($0.978/h), no job waited for it.
    record_run(run_log, clock, "i-b", "g6.2xlarge", at(5), at(5.5))
    finish(jobs, clock, "first", created=at(1) - timedelta(seconds=5), started=at(1) + timedelta(seconds=135),
           finished=at(1.1), gpu_seconds=200.0)
    finish(jobs, clock, "second", created=at(1.2), started=at(1.2), finished=at(1.3), status=states.FAILED)
    finish(jobs, clock, "last month", created=at(-30), started=at(-30), finished=at(-29.9), gpu_seconds=99.0)

    report = cost_report(run_log, jobs, at(0), at(24), now=at(24))

    assert report.starts == 2
    assert report.billed_s == pytest.approx(3600 + 1800)
    assert report.dollars == pytest.approx(2.24 + 0.978 / 2)
    assert report.boot_s == pytest.approx(135)
    assert report.busy_s == pytest.approx(200 + 360)  # ComfyUI's time; the failed job's wall time
    assert report.idle_s == pytest.approx(5400 - 135 - 560)
    assert report.jobs == 2
    assert report.cost_per_job == pytest.approx((2.24 + 0.489) / 2)


def test_period_costs_adds_the_month_beside_the_budget(jobs, run_log, clock):
    record_run(run_log, clock, "i-a", "g6e.2xlarge", at(1), at(3))

    document = period_costs(run_log, jobs, Period(at(0), at(2)), now=at(12), monthly_budget_usd=50.0)

    assert (document["gpu_hours"], document["dollars"]) == (1.0, 2.24)
    assert document["budget"] == {"month": "2026-06", "spend_usd": 4.48, "budget_usd": 50.0}
    assert period_costs(run_log, jobs, Period(at(0), at(2)), now=at(12), monthly_budget_usd=0.0)["budget"] is None


def test_the_run_log_of_a_region_prices_a_new_run_at_that_regions_price(dynamodb, control_table, clock, jobs):
    """What the budget and the reports read: a run opened in eu-central-1 costs eu-central-1's price."""
    eu = run_log_for(dynamodb, control_table, "eu-central-1", clock=clock)
    record_run(eu, clock, "i-eu", "g6e.2xlarge", at(1), at(2))

    assert cost_report(eu, jobs, at(0), at(3), now=at(3)).dollars == pytest.approx(2.8035)
