"""The simulator with low-priority jobs and deadlines, against hand-computed timelines: low-priority jobs alone start
nothing and run on an instance that is up anyway, after the normal ones; a job not started by its deadline expires."""

from __future__ import annotations

from lifecycle.model import Policy
from lifecycle.simulation.simulate import simulate, simulate_command
from lifecycle.simulation.scenario import SimulationParams, format_table
from lifecycle.simulation.workload import Job, parse_csv

COLD = SimulationParams().cold_start_s  # 135 s from the start request to the first job


def test_a_backlog_of_low_priority_jobs_alone_starts_nothing():
    r = simulate([Job(100.0 + n, 20, "low") for n in range(50)], Policy())
    assert (r.starts, r.completed, r.unserved, r.dollars) == (0, 0, 50, 0.0)


def test_low_priority_jobs_run_on_the_instance_a_normal_job_started_after_the_normal_ones():
    # The normal job at 100 starts the instance (ready at 235); the low one at 50 waited for it, and the normal one
    # at 200 goes before it.
    r = simulate([Job(50, 20, "low"), Job(100, 20), Job(200, 20)], Policy(idle_stop_s=300))
    assert r.starts == 1 and r.completed == 3
    # waits in the order of the jobs' arrival: the low one started at 275, after 235 and 255.
    assert r.waits_s == (225.0, 135.0, 55.0)


def test_low_priority_jobs_arriving_in_the_idle_time_before_a_stop_run_there():
    # Done at 255, idle until the stop at 570; the low job at 400 runs at once and moves the stop on.
    r = simulate([Job(100, 20), Job(400, 20, "low")], Policy(idle_stop_s=300))
    assert r.starts == 1 and r.waits_s == (135.0, 0.0)
    [run] = r.runs
    assert run.stopped_s > 570


def test_a_job_not_started_by_its_deadline_expires_and_is_never_run():
    # Its deadline passes before the instance its arrival started is ready (135 s): expired, never run, no wait.
    r = simulate([Job(100, 20, ttl_s=60), Job(100, 20, ttl_s=600)], Policy(idle_stop_s=300))
    assert (r.completed, r.expired, r.unserved) == (1, 1, 0)
    assert r.waits_s == (135.0,)
    assert "expired" in format_table([r]).splitlines()[0]


def test_a_low_priority_job_with_a_deadline_expires_without_a_gpu():
    r = simulate([Job(100, 20, "low", ttl_s=3600)], Policy())
    assert (r.starts, r.expired, r.unserved, r.dollars) == (0, 1, 0, 0.0)


def test_the_command_reads_priorities_and_deadlines(tmp_path):
    trace = tmp_path / "mixed.csv"
    trace.write_text("arrival_s,gpu_s,priority,ttl_s\n100,20,normal,\n110,20,low,\n120,20,low,30\n")
    assert len(parse_csv(trace.read_text())) == 3
    out = simulate_command(trace, "default")
    assert "expired" in out and "3 jobs" in out
