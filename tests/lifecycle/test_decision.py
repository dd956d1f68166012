"""The lifecycle decision, rule by rule: starts, waits, the never-stop-busy invariant, idle stops, pool, budget."""

from datetime import datetime, timedelta, timezone

import pytest

from lifecycle.decision import decide, last_activity, latest_heartbeats, wanted_instances
from lifecycle.model import Action, Heartbeat, Instance, Policy, Snapshot

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)
POLICY = Policy(idle_stop_s=300, heartbeat_timeout_s=45)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def gpu(state: str, instance_id: str = "i-a", launched_s: float | None = 3600) -> Instance:
    return Instance(instance_id, state, launched_at=None if launched_s is None else ago(launched_s))


def beat(instance_id: str = "i-a", age_s: float = 5, jobs: tuple[str, ...] = (), ready: bool = True) -> Heartbeat:
    return Heartbeat(instance_id, ago(age_s), jobs, ready)


def snap(*instances, visible=0, in_flight=0, beats=(), activity=None, spend=0.0) -> Snapshot:
    return Snapshot(NOW, tuple(instances), visible, in_flight, tuple(beats),
                    {k: ago(v) for k, v in (activity or {}).items()}, spend, 2.24)


def kinds(decision) -> list[tuple[str, str | None]]:
    return [(a.kind, a.instance_id) for a in decision.actions]


# (case, snapshot, policy, the start/stop/blocked actions expected)
STARTS = [
    ("work waits, nothing runs", snap(gpu("stopped"), visible=1), POLICY, [("start", "i-a")]),
    ("no work, nothing runs", snap(gpu("stopped")), POLICY, []),
    ("work waits, booting", snap(gpu("pending"), visible=3), POLICY, []),
    ("work waits, running", snap(gpu("running"), visible=3, beats=[beat(jobs=("j1",))]), POLICY, []),
    ("work waits, stopping: wait for stopped", snap(gpu("stopping"), visible=2), POLICY, []),
    ("work waits, it has stopped: start again", snap(gpu("stopped"), visible=2), POLICY, [("start", "i-a")]),
    ("only in flight, nothing runs: they come back by themselves",
     snap(gpu("stopped"), in_flight=2), POLICY, []),
    ("terminated and shutting-down are never started",
     snap(gpu("terminated", "i-a"), gpu("shutting-down", "i-b"), visible=1), POLICY, [("blocked", None)]),
    ("no instance at all", snap(visible=1), POLICY, [("blocked", None)]),
    ("the lowest id starts first", snap(gpu("stopped", "i-b"), gpu("stopped", "i-a"), visible=1), POLICY,
     [("start", "i-a")]),
]


@pytest.mark.parametrize("case,snapshot,policy,expected", STARTS, ids=[c[0] for c in STARTS])
def test_starts(case, snapshot, policy, expected):
    decision = decide(snapshot, policy)
    assert [k for k in kinds(decision) if k[0] in ("start", "stop", "blocked")] == expected


def test_a_stopping_instance_is_a_wait_and_says_so():
    [action] = decide(snap(gpu("stopping"), visible=2), POLICY).actions
    assert action.kind == "none" and action.instance_id == "i-a" and "waiting for it to stop" in action.reason


def test_a_pending_instance_is_a_wait_and_says_so():
    [action] = decide(snap(gpu("pending"), visible=2), POLICY).actions
    assert action == Action("none", "i-a", "pending: booting")


IDLE_LONG = 3600  # far past idle_stop_s
# (case, snapshot, stopped?) for one running instance under POLICY (idle_stop_s=300, heartbeat timeout 45 s)
STOPS = [
    ("idle long, quiet", snap(gpu("running"), beats=[beat()], activity={"i-a": IDLE_LONG}), True),
    ("a job is visible", snap(gpu("running"), visible=1, beats=[beat()], activity={"i-a": IDLE_LONG}), False),
    ("a job is in flight, fresh heartbeat idle",
     snap(gpu("running"), in_flight=1, beats=[beat()], activity={"i-a": IDLE_LONG}), False),
    ("the heartbeat lists a job though SQS shows none in flight",
     snap(gpu("running"), beats=[beat(jobs=("j1",))], activity={"i-a": IDLE_LONG}), False),
    ("stale heartbeat with in-flight messages counts as busy",
     snap(gpu("running"), in_flight=1, beats=[beat(age_s=600)]), False),
    ("missing heartbeat with in-flight messages counts as busy", snap(gpu("running"), in_flight=1), False),
    ("missing heartbeat, quiet, started long ago", snap(gpu("running", launched_s=IDLE_LONG)), True),
    ("stale heartbeat listing a job, nothing in flight: outdated, idle since it",
     snap(gpu("running"), beats=[beat(age_s=900, jobs=("j1",))]), True),
    ("stale heartbeat listing a job 200 s ago: idle only 200 s",
     snap(gpu("running"), beats=[beat(age_s=200, jobs=("j1",))]), False),
    ("idle exactly idle_stop_s", snap(gpu("running"), beats=[beat()], activity={"i-a": 300}), True),
    ("idle one second short", snap(gpu("running"), beats=[beat()], activity={"i-a": 299}), False),
    ("just started, never ran a job", snap(gpu("running", launched_s=60), beats=[beat(ready=False)]), False),
    ("started 300 s ago, never ran a job", snap(gpu("running", launched_s=300), beats=[beat()]), True),
    ("no start time and no activity known: idle", snap(gpu("running", launched_s=None)), True),
    ("recent activity beats an old start", snap(gpu("running"), beats=[beat()], activity={"i-a": 100}), False),
    ("pending is never stopped", snap(gpu("pending", launched_s=IDLE_LONG)), False),
]


@pytest.mark.parametrize("case,snapshot,stopped", STOPS, ids=[c[0] for c in STOPS])
def test_stops(case, snapshot, stopped):
    decision = decide(snapshot, POLICY)
    assert decision.stops == (("i-a",) if stopped else ())
    assert not decision.starts


def test_why_an_instance_is_kept_is_in_the_decision():
    busy = decide(snap(gpu("running"), beats=[beat(jobs=("job-7",))]), POLICY)
    assert Action("none", "i-a", "busy: job-7") in busy.actions and busy.busy == ("i-a",)
    waiting = decide(snap(gpu("running"), beats=[beat()], activity={"i-a": 120}), POLICY)
    assert Action("none", "i-a", "idle 120 s of 300 s") in waiting.actions
    assert waiting.idle_s == (("i-a", 120.0),)
    in_flight = decide(snap(gpu("running"), in_flight=2, beats=[beat()], activity={"i-a": IDLE_LONG}), POLICY)
    assert "2 in flight" in in_flight.actions[0].reason
    stale = decide(snap(gpu("running"), in_flight=1, beats=[beat(age_s=600)]), POLICY)
    assert "stale" in stale.actions[0].reason


def test_a_decision_logs_its_numbers():
    decision = decide(snap(gpu("running"), gpu("stopped", "i-b"), visible=15, in_flight=1,
                           beats=[beat(jobs=("j1",))], spend=12.5), Policy(max_instances=2))
    line = str(decision)
    for part in ("visible=15", "in_flight=1", "running=1", "wanted=2", "busy=i-a", "month_spend=$12.50",
                 "start i-b"):
        assert part in line


def test_last_activity_is_the_latest_known():
    instance = gpu("running", launched_s=1000)
    snapshot = snap(instance, beats=[beat(age_s=50, jobs=("j",))], activity={"i-a": 400})
    assert last_activity(instance, snapshot) == ago(50)
    assert last_activity(instance, snap(instance)) == ago(1000)
    assert last_activity(gpu("running", launched_s=None), snap()) is None


def test_the_newest_heartbeat_of_each_instance_counts():
    beats = (beat("i-a", 100, ("old",)), beat("i-a", 5), beat("i-b", 7))
    latest = latest_heartbeats(beats)
    assert latest["i-a"].running_jobs == () and latest["i-b"].at == ago(7)
    # the newer, empty heartbeat wins: the instance is idle since the older one listed a job
    decision = decide(snap(gpu("running"), beats=beats), POLICY)
    assert decision.idle_s == (("i-a", 100.0),)


POOL = Policy(idle_stop_s=300, min_instances=0, max_instances=3, backlog_per_instance=10)
POOL_CASES = [
    # (case, visible, states of i-0..i-3, policy, expected wanted, expected starts)
    ("one running copes with 10", 10, ["running", "stopped", "stopped", "stopped"], POOL, 1, ()),
    ("11 pass the backlog: another", 11, ["running", "stopped", "stopped", "stopped"], POOL, 2, ("i-1",)),
    ("25 want three", 25, ["running", "stopped", "stopped", "stopped"], POOL, 3, ("i-1", "i-2")),
    ("never past max_instances", 500, ["running", "stopped", "stopped", "stopped"], POOL, 3, ("i-1", "i-2")),
    ("pending counts as capacity", 25, ["running", "pending", "stopped", "stopped"], POOL, 3, ("i-2",)),
    ("cold pool, big backlog", 25, ["stopped"] * 4, POOL, 3, ("i-0", "i-1", "i-2")),
    ("min_instances without work", 0, ["stopped"] * 4, Policy(min_instances=1, max_instances=3), 1, ("i-0",)),
    ("min_instances already running", 0, ["running", "stopped", "stopped", "stopped"],
     Policy(min_instances=1, max_instances=3), 1, ()),
]


@pytest.mark.parametrize("case,visible,states,policy,wanted,starts", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool_starts(case, visible, states, policy, wanted, starts):
    instances = [gpu(s, f"i-{n}") for n, s in enumerate(states)]
    beats = [beat(i.instance_id, jobs=("j",)) for i in instances if i.state == "running"]
    snapshot = snap(*instances, visible=visible, beats=beats)
    assert wanted_instances(snapshot, policy) == wanted
    decision = decide(snapshot, policy)
    assert decision.starts == starts and decision.wanted == wanted


def test_extras_beyond_min_stop_first_the_longest_idle():
    instances = [gpu("running", f"i-{n}") for n in range(3)]
    activity = {"i-0": 400, "i-1": 900, "i-2": 100}
    beats = [beat(i.instance_id) for i in instances]
    decision = decide(snap(*instances, beats=beats, activity=activity), Policy(min_instances=1, max_instances=3))
    # i-1 (idle 900 s) and i-0 (400 s) are past 300 s; keeping one running keeps i-2 anyway
    assert decision.stops == ("i-1", "i-0")
    decision = decide(snap(*instances, beats=beats, activity={k: 1000 for k in activity}),
                      Policy(min_instances=1, max_instances=3))
    assert decision.stops == ("i-0", "i-1")
    assert Action("none", "i-2", "idle 1000 s, kept: min_instances=1") in decision.actions


def test_an_idle_extra_waits_while_another_instance_works():
    instances = [gpu("running", "i-0"), gpu("running", "i-1")]
    beats = [beat("i-0", jobs=("j1",)), beat("i-1")]
    decision = decide(snap(*instances, in_flight=1, beats=beats, activity={"i-1": IDLE_LONG}),
                      Policy(max_instances=2))
    assert decision.stops == ()


BUDGET_CASES = [
    # (case, spend, budget, stopped instances, visible, expected kinds)
    ("no budget", 10_000.0, None, 1, 1, ["start"]),
    ("an hour fits", 97.0, 100.0, 1, 1, ["start"]),
    ("an hour fits exactly", 97.76, 100.0, 1, 1, ["start"]),
    ("an hour would pass it", 98.0, 100.0, 1, 1, ["blocked"]),
    ("spent already", 150.0, 100.0, 1, 1, ["blocked"]),
    ("the second start would pass it", 96.0, 100.0, 2, 25, ["start", "blocked"]),
]


@pytest.mark.parametrize("case,spend,budget,stopped,visible,expected", BUDGET_CASES, ids=[c[0] for c in BUDGET_CASES])
def test_budget(case, spend, budget, stopped, visible, expected):
    instances = [gpu("stopped", f"i-{n}") for n in range(stopped)]
    policy = Policy(max_instances=2, monthly_budget_usd=budget)
    decision = decide(snap(*instances, visible=visible, spend=spend), policy)
    assert [a.kind for a in decision.actions] == expected


def test_a_blocked_start_says_why():
    [blocked] = decide(snap(gpu("stopped"), visible=3, spend=99.0), Policy(monthly_budget_usd=100.0)).blocked
    assert blocked.instance_id == "i-a"
    assert "$99.00 spent of $100.00" in blocked.reason and "3 job(s) waiting" in blocked.reason


def test_the_budget_never_stops_a_running_instance():
    decision = decide(snap(gpu("running"), visible=4, beats=[beat(jobs=("j",))], spend=500.0),
                      Policy(monthly_budget_usd=100.0))
    assert decision.stops == () and decision.blocked == ()


def test_nothing_to_do_is_said():
    assert decide(snap(gpu("stopped")), POLICY).actions == (Action("none", None, "nothing to do"),)
    [action] = decide(snap(gpu("stopped"), in_flight=3), POLICY).actions
    assert "3 in flight with no instance running" in action.reason


def test_decide_is_pure():
    snapshot = snap(gpu("running"), gpu("stopped", "i-b"), visible=30, beats=[beat(jobs=("j",))],
                    activity={"i-a": 10})
    before = repr(snapshot)
    policy = Policy(max_instances=2)
    assert decide(snapshot, policy) == decide(snapshot, policy)
    assert repr(snapshot) == before


@pytest.mark.parametrize("kwargs", [
    {"idle_stop_s": -1}, {"idle_stop_s": float("inf")}, {"min_instances": -1}, {"max_instances": 0},
    {"min_instances": 2, "max_instances": 1}, {"backlog_per_instance": 0}, {"heartbeat_timeout_s": 0},
    {"monthly_budget_usd": -5.0},
])
def test_policy_refuses_nonsense(kwargs):
    with pytest.raises(ValueError):
        Policy(**kwargs)


@pytest.mark.parametrize("make", [
    lambda: Instance("i-a", "rebooting"),
    lambda: Action("reboot", "i-a", "x"),
    lambda: Action("start", None, "x"),
    lambda: Snapshot(NOW, (), queue_visible=-1),
])
def test_model_refuses_nonsense(make):
    with pytest.raises(ValueError):
        make()
