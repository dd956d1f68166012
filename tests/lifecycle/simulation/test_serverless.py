"""The per-second serverless GPU every comparison reads as a ratio to, against hand-computed timelines."""

import pytest

from lifecycle.simulation.serverless import Serverless, simulate_serverless
from lifecycle.simulation.workload import Job

OFFER = Serverless(usd_per_s=0.001, cold_start_s=60, idle_timeout_s=5)


def test_a_lone_job_pays_its_cold_start_its_work_and_the_idle_timeout():
    r = simulate_serverless([Job(0, 30)], OFFER)
    assert r.waits_s == (60,) and r.starts == 1
    assert r.cost.billed_s == 60 + 30 + 5 and r.dollars == pytest.approx(0.095)
    assert (r.cost.boot_s, r.cost.busy_s, r.cost.idle_s) == (60, 30, 5)


def test_concurrent_jobs_get_a_worker_each_and_a_warm_one_is_reused():
    # 0: wakes w0 (ready 60, busy to 90, warm to 95); 10: w0 busy, wakes w1 (ready 70, busy to 100);
    # 100: w0 went cold at 95, w1 is free: no wait.
    r = simulate_serverless([Job(0, 30), Job(10, 30), Job(100, 20)], OFFER)
    assert r.waits_s == (60, 60, 0) and r.starts == 2
    assert r.cost.billed_s == (95 - 0) + (125 - 10)


def test_a_worker_is_not_reused_after_its_idle_timeout():
    r = simulate_serverless([Job(0, 10), Job(76, 10)], OFFER)  # free at 70, warm until 75
    assert r.waits_s == (60, 60) and r.starts == 2


def test_the_defaults_are_the_compared_offer():
    offer = Serverless()
    assert (offer.usd_per_s, offer.cold_start_s, offer.idle_timeout_s) == (0.00053, 60.0, 5.0)
    assert "0.00053" in offer.describe()
