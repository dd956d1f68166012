"""The simulator against hand-computed timelines, the replaced rule's failure modes, the optimum, the command."""

import pytest

from lifecycle.billing import dollars
from lifecycle.model import G6E_2XLARGE_HOURLY_USD, Policy
from lifecycle.simulation.optimum import busy_periods, optimum
from lifecycle.simulation.policies import PolicyError
from lifecycle.simulation.replaced import ReplacedRule
from lifecycle.simulation.scenario import SimulationParams, percentile
from lifecycle.simulation.simulate import simulate, simulate_command
from lifecycle.simulation.workload import Job, TraceError, read_trace, reference_trace_path

# Default params: pending 15 s, worker up at 90 s, models loaded at 135 s, stopping 30 s, beat every 30 s.
COLD = SimulationParams().cold_start_s


def test_one_job_timeline():
    # submitted at 100: started at once (the submission asks for a check), ready at 235, done at 255;
    # idle 300 s from 255 is reached at 555, so the beat at 570 stops it; billed from `running` at 115
    r = simulate([Job(100, 20)], Policy(idle_stop_s=300))
    assert COLD == 135 and r.waits_s == (135.0,) and r.starts == 1
    [run] = r.runs
    assert (run.started_s, run.stopped_s, run.boot_s) == (115, 570, 120)
    price = G6E_2XLARGE_HOURLY_USD  # the simulator's default: the reference region's
    assert r.dollars == pytest.approx(455 * price / 3600) == dollars(r.runs, price)
    assert (r.completed, r.failed, r.unserved, r.interrupted) == (1, 0, 0, 0)
    assert r.cost.busy_s == 20 and r.cost.boot_s == 120 and r.cost.idle_s == 455 - 140


def test_without_the_submission_check_the_start_waits_for_the_beat():
    r = simulate([Job(100, 20)], Policy(idle_stop_s=300), check_on_submit=False)
    assert r.waits_s == (155.0,) and (r.runs[0].started_s, r.runs[0].stopped_s) == (135, 600)


def test_jobs_queue_behind_one_another():
    r = simulate([Job(0, 30), Job(1, 30), Job(2, 30)], Policy())
    assert r.waits_s == (135.0, 164.0, 193.0)


def test_a_job_arriving_while_stopping_starts_the_instance_once_stopped():
    # stopped at 570, `stopping` until 600: the job of 580 waits, the instance starts again at 600
    r = simulate([Job(100, 20), Job(580, 20)], Policy(idle_stop_s=300))
    assert r.waits_s == (135.0, 155.0) and r.starts == 2
    assert [(x.started_s, x.stopped_s) for x in r.runs] == [(115, 570), (615, 1080)]


def test_the_replaced_rule_stops_thirty_minutes_after_the_last_visible_sample():
    # samples at 120 and 180 see the job waiting; six empty 5-minute periods later (at 2040) it stops
    r = simulate([Job(100, 20)], ReplacedRule())
    assert r.waits_s == (135.0,) and [(x.started_s, x.stopped_s) for x in r.runs] == [(115, 2040)]


def test_the_replaced_rule_never_retries_a_start_that_found_the_gpu_stopping():
    trace = [Job(100, 20), Job(2050, 20), Job(6000, 20)]
    old = simulate(trace, ReplacedRule())
    assert old.waits_s == (135.0, 6000 + COLD - 2050, 155.0)  # the 2050 job waits for the next submission
    new = simulate(trace, Policy())
    assert max(new.waits_s) == COLD


def test_the_replaced_rule_stops_the_gpu_under_running_jobs_and_ours_never_does():
    # a job every minute, 30 s after each sample, 40 s long: the visible count is 0 at every sample once
    # the first backlog is served, so the alarm fires during traffic and kills the job then running
    trace = [Job(60 * k + 30, 40) for k in range(90)]
    old = simulate(trace, ReplacedRule())
    assert old.interrupted >= 1 and old.starts >= 2 and old.completed == 90
    new = simulate(trace, Policy())
    assert new.interrupted == 0 and new.starts == 1 and new.completed == 90


def test_an_interrupted_job_returns_at_its_visibility_timeout_and_dead_letters_after_three_receives():
    trace = [Job(60 * k + 30, 40) for k in range(90)]
    r = simulate(trace, ReplacedRule(), max_receive_count=1)
    assert r.failed == r.interrupted >= 1 and r.completed == 90 - r.failed


def test_default_policy_never_interrupts_a_job_on_the_reference_trace():
    r = simulate(read_trace(reference_trace_path("bursty")), Policy())
    assert r.interrupted == 0 and r.failed == 0 and r.unserved == 0 and r.completed == r.jobs


def test_a_pool_serves_a_burst_sooner():
    burst = [Job(float(n), 30) for n in range(40)]
    one = simulate(burst, Policy(max_instances=1))
    two = simulate(burst, Policy(max_instances=2, backlog_per_instance=10))
    assert one.starts == 1 and two.starts == 2
    assert two.wait_p95_s < one.wait_p95_s and two.cost.busy_s == one.cost.busy_s


def test_a_budget_blocks_every_start():
    trace = [Job(100, 20), Job(200, 20)]
    r = simulate(trace, Policy(monthly_budget_usd=1.0))
    assert r.starts == 0 and r.dollars == 0 and r.unserved == 2 and r.completed == 0
    assert min(r.waits_s) > 86400  # still waiting when the simulation gave up, a day after the trace's


def test_min_instances_keeps_the_gpu_running_to_the_end_of_the_day():
    r = simulate([Job(100, 20)], Policy(min_instances=1))
    [run] = r.runs
    assert run.started_s == 15 and run.stopped_s == 86400


def test_params_are_checked():
    with pytest.raises(ValueError):
        SimulationParams(pending_s=100, boot_s=90)
    with pytest.raises(ValueError):
        SimulationParams(check_interval_s=0)
    with pytest.raises(TypeError):
        simulate([Job(0, 1)], Policy(), boot_sec=3)


@pytest.mark.parametrize("values,q,expected", [
    ([], 95, 0.0), ([5.0], 50, 5.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 95, 4), (list(range(1, 101)), 95, 95),
])
def test_percentile(values, q, expected):
    assert percentile(values, q) == expected


def test_busy_periods():
    periods, waits = busy_periods([Job(0, 30), Job(10, 30), Job(100, 5)])
    assert periods == [(0, 60), (100, 105)] and waits == [0, 20, 0]


@pytest.mark.parametrize("second,runs,billed", [
    (10_000, [(880, 1020), (9880, 10020)], 280),  # far apart: stop, boot again just in time
    (1_100, [(880, 1120)], 240),                   # 80 s gap: cheaper to stay on
    (1_220, [(880, 1020), (1100, 1240)], 280),     # 200 s gap: a stop and a boot (120 s) cost less
    (1_170, [(880, 1190)], 310),                   # 150 s gap: too short to stop and boot again
])
def test_optimum(second, runs, billed):
    r = optimum([Job(1000, 20), Job(second, 20)])
    assert [(x.started_s, x.stopped_s) for x in r.runs] == runs
    assert r.cost.billed_s == billed and r.waits_s == (0, 0) and r.starts == len(runs)


@pytest.mark.parametrize("name", ["steady", "bursty", "sparse-nightly"])
def test_the_compared_policies_cost_at_least_the_optimum(name):
    trace = read_trace(reference_trace_path(name))
    best = optimum(trace)
    assert simulate(trace, Policy(idle_stop_s=20 * 60)).dollars >= best.dollars
    assert simulate(trace, ReplacedRule()).dollars >= best.dollars


def test_simulate_command(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,gpu_s\n100,20\n5000,30\n")
    text = simulate_command(trace, "fixed-10")
    lines = text.splitlines()
    assert lines[0] == f"trace {trace}: 2 jobs, 0.01 GPU h of work over 1 day(s)"
    assert [line.split()[0] for line in lines[3:6]] == ["fixed-10", "replaced", "optimum"]
    assert lines[-1].startswith("fixed-10: $") and "vs replaced" in lines[-1] and "x optimum" in lines[-1]
    assert simulate_command(trace, "replaced").splitlines()[3].split()[0] == "replaced"
    assert "default,max_instances=2" in simulate_command(trace, "max_instances=2")


def test_simulate_command_errors(tmp_path):
    with pytest.raises(TraceError):
        simulate_command(tmp_path / "missing.csv")
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,gpu_s\n1,2\n")
    with pytest.raises(PolicyError):
        simulate_command(trace, "nightly")
