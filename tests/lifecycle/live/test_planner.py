"""The live check's learned policy: read from the job table (moto), refreshed at most every few minutes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs import states
from gpuorch.jobs.store import JobStore
from lifecycle.learning import Economics
from lifecycle.live.planner import LearningPlanner
from lifecycle.model import Policy

MONDAY = datetime(2026, 6, 1, tzinfo=timezone.utc)  # a Monday
ECON = Economics(hourly_usd=2.24, cold_start_billed_s=120.0, cold_start_s=140.0, mean_job_s=20.0)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


@pytest.fixture
def jobs(provisioned, settings, clock):
    return JobStore(provisioned.aws.dynamodb, settings.job_table, ttl_seconds=86400 * 60, clock=clock)


@pytest.fixture
def submit(jobs, clock):
    """Records a job submitted at a moment (and, with GPU seconds, run and finished then)."""

    def record(at: datetime, job_id: str, gpu_seconds: float | None = 20.0) -> None:
        clock.now = at
        jobs.create(job_id, "camera-angle", {}, source="api")
        if gpu_seconds is not None:
            jobs.transition(job_id, states.RUNNING)
            jobs.transition(job_id, states.SUCCEEDED, gpu_seconds=gpu_seconds)

    return record


def test_a_daily_first_job_is_pre_warmed_for_from_the_job_tables_history(jobs, submit):
    for day in range(6):
        submit(MONDAY + timedelta(days=day, hours=9), f"j{day}")
    planner = LearningPlanner(jobs, Policy(), ECON)

    before_nine, why = planner.policy(MONDAY + timedelta(days=6, hours=9) - timedelta(seconds=60))
    afternoon, _ = planner.policy(MONDAY + timedelta(days=6, hours=15))

    assert before_nine.min_instances == 1 and "pre-warm on" in why
    assert afternoon.min_instances == 0


def test_the_job_table_is_read_again_only_after_the_refresh_interval(jobs, submit):
    submit(MONDAY, "first")
    planner = LearningPlanner(jobs, Policy(), ECON, refresh_s=600)
    later = MONDAY + timedelta(minutes=1)
    assert planner.history(later).count == 1
    submit(MONDAY + timedelta(minutes=2), "second", gpu_seconds=None)  # still queued
    assert planner.history(MONDAY + timedelta(minutes=5)).count == 1  # read a minute ago: not read again
    refreshed = planner.history(MONDAY + timedelta(minutes=12))
    assert refreshed.count == 2 and refreshed.gpu_s[-1] == ECON.mean_job_s  # not run yet: the mean


def test_jobs_older_than_the_lookback_are_not_read(jobs, submit):
    submit(MONDAY, "old")
    planner = LearningPlanner(jobs, Policy(), ECON)
    assert planner.history(MONDAY + timedelta(weeks=5)).count == 0
