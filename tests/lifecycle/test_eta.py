"""Where a job is and what it will cost: the pure estimates, table-driven."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lifecycle.eta import (DEFAULT_GPU_S, GPU_STARTING, QUEUED, RUNNING, WAITING_FOR_GPU, GpuView, WorkflowTimes,
                           accuracy, actual, estimate, given_back, observed_times, quote, waiting_again, whereabouts,
                           work_ahead_s)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
OWN = WorkflowTimes(gpu_s=20.0, run_s=25.0, observed=5)


@pytest.mark.parametrize("status,ahead,work,gpu,running_for,phase,start,finish", [
    ("queued", 0, 0.0, GpuView(ready=1), 0, QUEUED, 0.0, 25.0),
    ("queued", 3, 90.0, GpuView(ready=1), 0, QUEUED, 90.0, 115.0),
    ("queued", 3, 90.0, GpuView(ready=2), 0, QUEUED, 45.0, 70.0),
    ("queued", 2, 50.0, GpuView(starting_in_s=(40.0,)), 0, GPU_STARTING, 90.0, 115.0),
    ("queued", 0, 0.0, GpuView(starting_in_s=(0.0,)), 0, GPU_STARTING, 0.0, 25.0),
    ("queued", 1, 25.0, GpuView(cold_start_s=120.0), 0, WAITING_FOR_GPU, 145.0, 170.0),
    ("queued", 1, 25.0, GpuView(blocked="monthly budget"), 0, WAITING_FOR_GPU, None, None),
    ("queued", 1, 25.0, GpuView(ready=1, blocked="monthly budget"), 0, QUEUED, 25.0, 50.0),
    ("running", 0, 0.0, GpuView(ready=1), 10.0, RUNNING, 0.0, 15.0),
    ("running", 0, 0.0, GpuView(ready=1), 40.0, RUNNING, 0.0, 0.0),
])
def test_a_job_s_phase_and_eta_follow_the_gpu_s_state(status, ahead, work, gpu, running_for, phase, start, finish):
    where = whereabouts(status, OWN, ahead=ahead, work_ahead=work, gpu=gpu, running_for_s=running_for)
    assert (where.phase, where.start_in_s, where.finish_in_s) == (phase, start, finish)
    assert where.queue_position == (ahead if status == "queued" else 0)
    assert (where.eta(NOW) is None) == (finish is None)


@pytest.mark.parametrize("running_jobs,running_for,expected", [
    (None, 600.0, False),  # the workers' reports not known: it runs as its record says
    (frozenset({"j1"}), 600.0, False),  # a worker reports it
    (frozenset(), 10.0, False),  # just taken: no report has had time to list it
    (frozenset(), 31.0, True),  # no worker has reported it for longer than a report's staleness
    (frozenset({"j2"}), 600.0, True),
])
def test_a_running_job_no_worker_reports_was_given_back(running_jobs, running_for, expected):
    assert given_back("j1", running_for, GpuView(running_jobs=running_jobs), grace_s=30.0) is expected


def test_a_given_back_job_waits_at_the_queue_s_front_and_says_why():
    where = waiting_again(whereabouts("queued", OWN, ahead=0, work_ahead=0.0, gpu=GpuView(starting_in_s=(50.0,))))
    assert (where.phase, where.queue_position, where.start_in_s) == (GPU_STARTING, 0, 50.0)
    assert where.reason.startswith("taken off its GPU instance (interrupted or gone), waiting to run again: a GPU")


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_job_that_is_over_is_nowhere(status):
    assert whereabouts(status, OWN, ahead=0, work_ahead=0.0, gpu=GpuView(ready=1)) is None


def test_work_ahead_counts_each_queued_job_s_workflow_and_what_running_ones_have_left():
    times = {"camera-angle": WorkflowTimes(30, 35, 4), "qwen-image-edit": WorkflowTimes(15, 18, 4)}
    assert work_ahead_s(["camera-angle", "qwen-image-edit", "other"], [10.0, -3.0], times) == 35 + 18 + (
        DEFAULT_GPU_S + 5) + 10


@pytest.mark.parametrize("finished,expected", [
    ([], {}),
    ([("a", 10.0, 12.0), ("a", 20.0, 24.0), ("a", 30.0, 33.0)], {"a": WorkflowTimes(20.0, 24.0, 3)}),
    ([("a", None, 12.0)], {"a": WorkflowTimes(DEFAULT_GPU_S, DEFAULT_GPU_S, 1)}),
    ([("a", 10.0, None), ("b", 0.0, None)], {"a": WorkflowTimes(10.0, 15.0, 1)}),
])
def test_workflow_times_are_the_medians_of_finished_jobs(finished, expected):
    assert observed_times(finished) == expected


@pytest.mark.parametrize("gpu_s,boot,hourly,warm,cold", [
    (36.0, 100.0, 3.6, 0.036, 0.136),
    (36.0, 0.0, 3.6, 0.036, 0.06),  # a start is billed 60 s at least
    (0.0, 200.0, 1.8, 0.0, 0.1),
])
def test_a_price_quote_warm_and_cold(gpu_s, boot, hourly, warm, cold):
    assert quote(WorkflowTimes(gpu_s, gpu_s), GpuView(billed_boot_s=boot, hourly_usd=hourly)) == {
        "usd_warm": pytest.approx(warm), "usd_cold": pytest.approx(cold)}


def test_the_actual_beside_the_estimate_and_their_accuracy():
    gpu = GpuView(ready=1, hourly_usd=3.6)
    where = whereabouts("queued", OWN, ahead=0, work_ahead=0.0, gpu=gpu)
    estimated = estimate(OWN, where, gpu, NOW)
    assert (estimated["phase"], estimated["usd_warm"], estimated["finish_by"]) == (QUEUED, 0.02,
                                                                                   "2026-06-01T12:00:25.000000Z")
    done = actual(estimated, gpu_seconds=25.0, started_at="2026-06-01T12:00:01+00:00",
                  finished_at="2026-06-01T12:00:35+00:00")
    assert done == {"gpu_seconds": 25.0, "usd": 0.025, "started_at": "2026-06-01T12:00:01+00:00",
                    "finished_at": "2026-06-01T12:00:35+00:00", "finish_error_s": 10.0}
    assert actual(None, gpu_seconds=1.0, started_at=None, finished_at=None) is None

    early = {"gpu_seconds": 20.0, "finish_error_s": -5.0}
    report = accuracy([(estimated, done), (estimated, early), (estimated, {"gpu_seconds": None,
                                                                          "finish_error_s": None})])
    assert report == {"jobs": 2, "gpu_seconds_error_pct": 10.0, "finish_error_s": {"median": 7.5, "p90": 10.0},
                      "finished_by_estimate": 0.5}
    assert accuracy([])["jobs"] == 0
