"""The live check's learned policy: read from the job table (moto), refreshed at most every few minutes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs import states
from gpuorch.jobs.store import JobStore
from lifecycle.learning import Economics
from lifecycle.live.planner import FixedPlanner, LearningPlanner, planner_for
from lifecycle.model import Instance, Policy, Snapshot
from lifecycle.schedule import parse_windows

MONDAY = datetime(2026, 6, 1, tzinfo=timezone.utc)  # a Monday
ECON = Economics(hourly_usd=2.24, cold_start_billed_s=120.0, cold_start_s=140.0, mean_job_s=20.0)


def at(now: datetime, **kwargs) -> Snapshot:
    return Snapshot(now, (Instance("i-od", "stopped"),), **kwargs)


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

    before_nine, why = planner(at(MONDAY + timedelta(days=6, hours=9) - timedelta(seconds=60)))
    afternoon, _ = planner(at(MONDAY + timedelta(days=6, hours=15)))

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


def test_the_learned_idle_time_is_weighed_at_the_price_of_the_market_a_start_takes(jobs, submit):
    # Gaps of ten minutes after every job, a wait valued at six cents a minute: at on-demand a restart (its billed
    # seconds and its wait) costs less than ten idle minutes; at a tenth of the price idling through them is cheaper.
    for n in range(12):
        submit(MONDAY + timedelta(minutes=10 * n), f"j{n}")
    patient = Economics(hourly_usd=2.24, cold_start_billed_s=120.0, cold_start_s=140.0, mean_job_s=20.0,
                        wait_usd_per_s=0.001)
    planner = LearningPlanner(jobs, Policy(), patient)
    now = MONDAY + timedelta(minutes=125)
    pool = (Instance("i-spot", "stopped", market="spot"), Instance("i-od", "stopped"))
    on_demand, _ = planner(Snapshot(now, pool, spot_prices={"i-spot": 2.2}))
    cheap, why = planner(Snapshot(now, pool, spot_prices={"i-spot": 0.224}))
    assert on_demand.idle_stop_s < 580 <= cheap.idle_stop_s
    assert "GPU at $0.22/h" in why


WINDOWS = parse_windows("Mon-Fri 08:00-18:00 UTC")


def test_both_planners_keep_a_gpu_ready_in_a_warm_window_opened_a_cold_start_early(jobs):
    early = MONDAY + timedelta(hours=8) - timedelta(seconds=100)
    for planner in (FixedPlanner(Policy(), WINDOWS, lead_s=140), LearningPlanner(jobs, Policy(), ECON,
                                                                                  windows=WINDOWS, lead_s=140)):
        policy, why = planner(at(early))
        assert policy.min_instances == 1 and "warm window Mon-Fri 08:00-18:00 UTC" in why
        assert planner(at(MONDAY + timedelta(hours=19)))[0].min_instances == 0


def test_the_fixed_planner_is_the_configured_policy_outside_windows():
    policy = Policy(idle_stop_s=420)
    assert FixedPlanner(policy)(at(MONDAY)) == (policy, "fixed: idle 420 s")


def test_planner_for_names_the_policy_and_reads_the_job_table_only_to_learn(jobs):
    asked = []

    def job_table():
        asked.append(True)
        return jobs

    assert isinstance(planner_for("fixed", Policy(), jobs=job_table, economics=ECON), FixedPlanner) and not asked
    assert isinstance(planner_for("learned", Policy(), jobs=job_table, economics=ECON), LearningPlanner) and asked
    with pytest.raises(ValueError, match="unknown lifecycle policy 'clever'"):
        planner_for("clever", Policy(), jobs=job_table, economics=ECON)


def test_the_control_worker_builds_its_planner_from_its_settings(provisioned):
    import dataclasses

    from gpuorch.errors import ConfigurationError
    from gpuorch.services import Services
    from lifecycle.live.build import planner_from

    def built(**changes):
        settings = dataclasses.replace(provisioned.settings, **changes)
        return planner_from(settings, Services(settings, provisioned.aws))

    learned = built(lifecycle_policy="learned", warm_windows="Mon 08:00-09:00 UTC", wait_value_usd_per_hour=3.6)
    assert isinstance(learned, LearningPlanner) and learned.economics.wait_usd_per_s == pytest.approx(0.001)
    assert [w.text for w in learned.windows] == ["Mon 08:00-09:00 UTC"] and learned.lead_s > 0
    assert isinstance(built(), FixedPlanner)
    with pytest.raises(ConfigurationError, match="GPUORCH_WARM_WINDOWS: warm window 'Mon 8-9 UTC'"):
        built(warm_windows="Mon 8-9 UTC")
