"""Policies that learn from history: ski rental over the gaps, pre-warm, scale-out, and honesty about time."""

import pytest

from lifecycle.learning import (
    DAY_S, HOUR_S, MIN_GAPS, WEEK_S, Economics, History, backlog_per_instance, choose_idle, gaps, hour_of_week,
    learned_idle_s, plan, prewarm_share,
)
from lifecycle.model import Policy

ECON = Economics(hourly_usd=2.0, cold_start_billed_s=120.0, cold_start_s=140.0, mean_job_s=20.0)


@pytest.mark.parametrize("lengths,expected", [
    ([30.0] * 20, 30.0),            # every gap shorter than a restart: keep warm through them (shortest that does)
    ([5000.0] * 20, 0.0),           # every gap long: stop at once
    ([30.0] * 10 + [5000.0] * 10, 30.0),
    ([100.0] * 10 + [5000.0] * 10, 0.0),     # a 100 s gap costs less than a restart, but half the gaps are long
    ([100.0] * 18 + [5000.0] * 2, 100.0),   # mostly 100 s gaps: keep warm through them
])
def test_the_idle_time_is_the_longest_within_a_whisker_of_the_cheapest_in_hindsight(lengths, expected):
    chosen = choose_idle(lengths, ECON)
    assert chosen >= expected
    restart = ECON.cold_start_billed_s
    cost = sum(g if g <= chosen else chosen + restart for g in lengths)
    best = min(sum(g if g <= t else t + restart for g in lengths) for t in (0, 30, 60, 120, 300, 600, 3600))
    assert cost <= best * 1.05


def test_gaps_run_from_a_jobs_end_to_the_next_arrival_and_the_last_one_is_open():
    history = History([0.0, 100.0, 110.0], [20.0, 20.0, 5.0])
    assert gaps(history, now_s=200.0) == [(20.0, 80.0), (115.0, 85.0)]  # 100 arrived while the 2nd still ran


def test_with_too_little_history_the_idle_time_is_the_break_even():
    idle, source = learned_idle_s(History([0.0], [10.0]), 100.0, ECON)
    assert idle == ECON.break_even_s and "break-even" in source


def test_the_idle_time_widens_from_the_hour_of_the_week_to_every_hour():
    # Short gaps at 10:00 on Mondays (enough of them), long ones elsewhere.
    arrivals, gpu = [], []
    for week in range(3):
        start = week * WEEK_S + 10 * HOUR_S
        for k in range(5):
            arrivals.append(start + k * 50.0)
            gpu.append(20.0)
    history = History(arrivals, gpu)
    now = 3 * WEEK_S + 10 * HOUR_S
    idle, source = learned_idle_s(history, now, ECON)
    assert "this hour of the week" in source and idle >= 30.0
    assert hour_of_week(now) == 10


def test_pre_warm_needs_enough_past_periods_with_a_job_in_the_coming_cold_start():
    # A job at 09:00 every day for six days: on the seventh, just before 09:00, warm; at 15:00, not.
    arrivals = [d * DAY_S + 9 * HOUR_S for d in range(6)]
    history = History(arrivals, [20.0] * 6)
    assert prewarm_share(history, 6 * DAY_S + 9 * HOUR_S - 60, ECON.cold_start_s) == 1.0
    assert prewarm_share(history, 6 * DAY_S + 15 * HOUR_S, ECON.cold_start_s) == 0.0
    # Only three days known: a share over three looks is chance, so no pre-warm.
    assert prewarm_share(History(arrivals[:3], [20.0] * 3), 3 * DAY_S + 9 * HOUR_S - 60, 140.0) == 0.0


def test_another_gpu_per_cold_start_of_waiting_work():
    assert backlog_per_instance(ECON) == 7  # 140 s of cold start / 20 s jobs
    assert backlog_per_instance(Economics(2.0, 120.0, 140.0, mean_job_s=500.0)) == 1


def test_a_plan_sees_only_the_jobs_before_now():
    arrivals = [float(t) for t in range(0, 40 * 3600, 600)]
    future = arrivals + [40 * 3600.0 + k for k in range(200)]
    now = 40 * 3600.0 - 1
    past_only = History(arrivals, [20.0] * len(arrivals))
    with_future = History(future, [20.0] * len(future), end=len(arrivals))
    assert plan(past_only, now, Policy(), ECON) == plan(with_future, now, Policy(), ECON)


def test_the_plan_keeps_the_pools_bounds_and_says_why():
    arrivals = [d * DAY_S + 9 * HOUR_S for d in range(6)]
    policy, why = plan(History(arrivals, [20.0] * 6), 6 * DAY_S + 9 * HOUR_S - 60, Policy(max_instances=3), ECON)
    assert policy.min_instances == 1 and policy.max_instances == 3
    assert "pre-warm on" in why and "break-even" in why  # six gaps are fewer than MIN_GAPS
    assert MIN_GAPS > 6


def test_valuing_waits_keeps_a_cheap_gpu_longer():
    # At on-demand, a restart costs its billed seconds; a wait valued at a GPU second adds the cold start's.
    patient = Economics(hourly_usd=3.6, cold_start_billed_s=120.0, cold_start_s=140.0, wait_usd_per_s=0.001)
    assert ECON.break_even_s == 120.0
    assert patient.break_even_s == pytest.approx(120.0 + 140.0)
    # At a tenth of the price the same wait is worth ten times more GPU seconds.
    assert patient.at_price(0.36).break_even_s == pytest.approx(120.0 + 1400.0)
    gaps_of_15_minutes = [900.0] * 20
    assert choose_idle(gaps_of_15_minutes, ECON) == 0.0
    assert choose_idle(gaps_of_15_minutes, patient.at_price(0.36)) >= 900.0


def test_the_price_weighed_is_the_market_a_start_takes():
    from datetime import datetime, timezone

    from lifecycle.learning import start_price
    from lifecycle.model import G6E_2XLARGE_HOURLY_USD, Instance, Snapshot
    now = datetime(2026, 1, 5, tzinfo=timezone.utc)
    pool = (Instance("i-spot", "stopped", market="spot"), Instance("i-od", "stopped"))
    assert start_price(Snapshot(now, pool, spot_prices={"i-spot": 0.7}), Policy()) == 0.7
    on_demand = G6E_2XLARGE_HOURLY_USD
    assert start_price(Snapshot(now, pool, spot_prices={"i-spot": 2.1}), Policy()) == on_demand  # dear: on-demand
    assert start_price(Snapshot(now, pool[1:]), Policy()) == on_demand
