"""EC2 billing arithmetic: per-second with a 60 s minimum per start, dollars, and the period report."""

import pytest

from lifecycle.billing import MIN_BILLED_S, Run, billed_seconds, clip, dollars, report


@pytest.mark.parametrize("seconds,billed", [
    (0.0, 60.0), (1.0, 60.0), (59.9, 60.0), (60.0, 60.0), (61.5, 61.5), (3600.0, 3600.0),
])
def test_billed_seconds(seconds, billed):
    assert billed_seconds(Run("i", 100.0, 100.0 + seconds)) == billed


@pytest.mark.parametrize("runs,hourly,usd", [
    ([], 2.24, 0.0),
    ([Run("i", 0, 3600)], 2.24, 2.24),                   # one hour on demand
    ([Run("i", 0, 1800), Run("i", 5000, 6800)], 2.24, 2.24),
    ([Run("i", 0, 10)], 3.6, 0.06),                      # ten seconds billed as sixty
    ([Run("i", 0, 3600)], 0.90, 0.90),                   # a spot price is just another hourly price
])
def test_dollars(runs, hourly, usd):
    assert dollars(runs, hourly) == pytest.approx(usd)


def test_a_run_cannot_end_before_it_starts():
    with pytest.raises(ValueError):
        Run("i", 10, 5)
    with pytest.raises(ValueError):
        Run("i", 0, 5, boot_s=-1)


@pytest.mark.parametrize("run,period,expected", [
    (Run("i", 10, 20, 5), (0, 100), Run("i", 10, 20, 5)),
    (Run("i", 10, 20, 5), (15, 100), Run("i", 15, 20, 0)),
    (Run("i", 10, 20, 5), (12, 100), Run("i", 12, 20, 3)),
    (Run("i", 10, 20, 5), (0, 12), Run("i", 10, 12, 2)),
    (Run("i", 10, 20, 5), (20, 100), None),
    (Run("i", 10, 20, 5), (0, 10), None),
    (Run("i", 10, 10), (10, 20), Run("i", 10, 10)),
])
def test_clip(run, period, expected):
    assert clip(run, *period) == expected


def test_report_splits_billed_time_into_busy_boot_and_idle():
    runs = [Run("i", 0, 1000, boot_s=120), Run("i", 5000, 5600, boot_s=120)]
    jobs = [30.0] * 20  # 600 s of GPU work
    r = report(runs, jobs, hourly_usd=3.6)
    assert r.billed_s == 1600 and r.busy_s == 600 and r.boot_s == 240 and r.idle_s == 760
    assert r.dollars == pytest.approx(1.6) and r.gpu_hours == pytest.approx(1600 / 3600)
    assert (r.busy_share, r.boot_share, r.idle_share) == pytest.approx((0.375, 0.15, 0.475))
    assert r.cost_per_job == pytest.approx(0.08) and r.starts == 2 and r.period_s == 5600
    assert "0.44 GPU h billed, $1.60, 2 start(s)" in str(r)


def test_report_over_a_period_bills_the_minimum_only_for_starts_inside_it():
    runs = [Run("i", -30, 20), Run("i", 50, 55), Run("i", 90, 200)]
    r = report(runs, [], hourly_usd=3600.0, period=(0, 100))
    # 20 s carried in from before the period (no minimum), 60 s minimum for the 5 s run, 10 s up to the end
    assert r.billed_s == 20 + MIN_BILLED_S + 10 and r.starts == 2 and r.dollars == pytest.approx(90.0)
    assert r.idle_s == 90 and r.cost_per_job is None


def test_a_zero_length_run_is_billed_the_minimum():
    assert report([Run("i", 5, 5)], [], 3600.0).billed_s == MIN_BILLED_S


def test_report_of_nothing():
    r = report([], [], 2.24)
    assert (r.billed_s, r.dollars, r.busy_share, r.starts) == (0, 0, 0, 0)
    with pytest.raises(ValueError):
        report([], [], 2.24, period=(10, 0))
