"""The lifecycle decision for instances that cannot serve: stopped whatever waits, held until the configuration
changes or an operator starts them, and named in the reason the jobs wait."""

from datetime import datetime, timedelta, timezone

import pytest

from lifecycle.decision import decide, hold_reason
from lifecycle.model import Action, Heartbeat, Instance, Policy, Refusal, Snapshot

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)
POLICY = Policy(idle_stop_s=300, heartbeat_timeout_s=45, boot_grace_s=600, max_instances=2)
CONF = "conf-now"
MISSING_LORA = "camera-angle: the server has no loras file 'x.safetensors'"


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def gpu(state: str, instance_id: str = "i-a", launched_s: float = 3600) -> Instance:
    return Instance(instance_id, state, launched_at=ago(launched_s))


def beat(instance_id: str = "i-a", age_s: float = 5, jobs: tuple[str, ...] = ()) -> Heartbeat:
    return Heartbeat(instance_id, ago(age_s), jobs, True)


def refused(instance_id: str = "i-a", age_s: float = 60, held_against: str | None = None) -> Refusal:
    return Refusal(instance_id, ago(age_s), (MISSING_LORA,), "f1", "worker", held_against)


def snap(*instances, visible=0, beats=(), refusals=(), started=None, configuration=CONF) -> Snapshot:
    return Snapshot(NOW, tuple(instances), visible, 0, tuple(beats), refusals=tuple(refusals),
                    configuration=configuration, started_at={k: ago(v) for k, v in (started or {}).items()})


def acts(decision) -> list[tuple[str, str | None]]:
    return [(a.kind, a.instance_id) for a in decision.actions if a.kind in ("start", "stop", "blocked")]


# (case, snapshot, policy, start/stop/blocked actions, held, newly held, superseded)
CASES = [
    ("a worker refused during this run: stopped and held",
     snap(gpu("running", launched_s=120), refusals=[refused(age_s=60)]), POLICY,
     [("stop", "i-a")], ("i-a",), ("i-a",), ()),
    ("refused with jobs waiting: stopped all the same, the jobs say why",
     snap(gpu("running", launched_s=120), visible=3, refusals=[refused(age_s=60)]), POLICY,
     [("blocked", "i-a"), ("stop", "i-a")], ("i-a",), ("i-a",), ()),
    ("refused while another instance can serve: that one starts",
     snap(gpu("running", launched_s=120), gpu("stopped", "i-b"), visible=3, refusals=[refused(age_s=60)]), POLICY,
     [("start", "i-b"), ("stop", "i-a")], ("i-a",), ("i-a",), ()),
    ("held, the configuration unchanged: never started",
     snap(gpu("stopped"), visible=3, refusals=[refused(held_against=CONF)]), POLICY,
     [("blocked", "i-a")], ("i-a",), (), ()),
    ("held, the configuration changed since: started once more",
     snap(gpu("stopped"), visible=3, refusals=[refused(held_against="conf-before")]), POLICY,
     [("start", "i-a")], (), (), ()),
    ("refused, not yet held: held against the configuration now",
     snap(gpu("stopped"), visible=3, refusals=[refused()]), POLICY,
     [("blocked", "i-a")], ("i-a",), ("i-a",), ()),
    ("no configuration known: held, marked later",
     snap(gpu("stopped"), visible=3, refusals=[refused()], configuration=""), POLICY,
     [("blocked", "i-a")], ("i-a",), (), ()),
    ("held while stopping: not waited for to start it",
     snap(gpu("stopping"), visible=3, refusals=[refused(held_against=CONF)]), POLICY,
     [("blocked", "i-a")], ("i-a",), (), ()),
    ("held, no work: nothing to start", snap(gpu("stopped"), refusals=[refused(held_against=CONF)]), POLICY,
     [], ("i-a",), (), ()),
    ("refused in an earlier run, started again since: judged by this run",
     snap(gpu("running", launched_s=30), refusals=[refused(age_s=900, held_against="conf-before")]), POLICY,
     [], (), (), ()),
    ("a heartbeat after the refusal supersedes it",
     snap(gpu("running"), beats=[beat(age_s=5, jobs=("j",))], refusals=[refused(age_s=60)]), POLICY,
     [], (), (), ("i-a",)),
    ("a stopped instance whose worker passed since is free to start",
     snap(gpu("stopped"), visible=1, beats=[beat(age_s=400)], refusals=[refused(age_s=900, held_against=CONF)]),
     POLICY, [("start", "i-a")], (), (), ("i-a",)),
    ("no report within the boot grace: stopped and held",
     snap(gpu("running", launched_s=700)), POLICY, [("stop", "i-a")], ("i-a",), (), ()),
    ("still within the boot grace: left to boot, and counted as coming",
     snap(gpu("running", launched_s=500), gpu("stopped", "i-b"), visible=3), POLICY, [], (), (), ()),
    ("only an earlier run's heartbeat: not ready in this one",
     snap(gpu("running", launched_s=700), beats=[beat(age_s=800)]), POLICY, [("stop", "i-a")], ("i-a",), (), ()),
    ("the run's start as the gatherer knows it, not EC2's first LaunchTime",
     snap(gpu("running", launched_s=86400), started={"i-a": 100}), POLICY, [], (), (), ()),
    ("no boot grace (the simulator): never stopped for it",
     snap(gpu("running", launched_s=700), visible=1), Policy(boot_grace_s=None), [], (), (), ()),
    ("a refusal of an instance outside the pool changes nothing",
     snap(gpu("stopped"), visible=1, refusals=[refused("i-gone")]), POLICY, [("start", "i-a")], (), (), ()),
    ("min_instances keeps no instance that cannot serve",
     snap(gpu("running", launched_s=120), refusals=[refused(age_s=60)]), Policy(min_instances=1, boot_grace_s=600),
     [("blocked", "i-a"), ("stop", "i-a")], ("i-a",), ("i-a",), ()),
]


@pytest.mark.parametrize("case,snapshot,policy,expected,held,newly_held,superseded", CASES, ids=[c[0] for c in CASES])
def test_holds(case, snapshot, policy, expected, held, newly_held, superseded):
    decision = decide(snapshot, policy)
    assert acts(decision) == expected
    assert decision.held == held
    assert tuple(r.instance_id for r in decision.newly_held) == newly_held
    assert all(r.held_against == CONF for r in decision.newly_held)
    assert tuple(r.instance_id for r in decision.superseded) == superseded


def test_the_jobs_say_which_instance_cannot_serve_and_why():
    decision = decide(snap(gpu("stopped"), visible=2, refusals=[refused(held_against=CONF)]), POLICY)
    [blocked] = decision.blocked
    assert blocked.reason.startswith(f"the GPU instance i-a cannot serve: its worker refused to start: {MISSING_LORA}")
    assert "gpuorch gpu start i-a" in blocked.reason and blocked.reason == hold_reason(refused(held_against=CONF))


def test_a_stop_for_the_boot_grace_carries_the_refusal_to_record():
    decision = decide(snap(gpu("running", launched_s=700)), POLICY)
    [refusal] = decision.cannot_serve
    assert (refusal.instance_id, refusal.at, refusal.source, refusal.held_against) == ("i-a", NOW, "lifecycle", CONF)
    assert "700 s after the instance started (limit 600 s)" in str(refusal)
    assert Action("stop", "i-a", f"cannot serve: {refusal}") in decision.actions


def test_a_refused_instance_is_stopped_even_with_messages_in_flight():
    """Its worker refused before taking any: in-flight messages are another instance's, or wait their timeout."""
    snapshot = Snapshot(NOW, (gpu("running", launched_s=120),), 0, 2, refusals=(refused(age_s=60),),
                        configuration=CONF)
    assert decide(snapshot, POLICY).stops == ("i-a",)


def test_holds_are_pure():
    snapshot = snap(gpu("running", launched_s=700), gpu("stopped", "i-b"), visible=1, refusals=[refused("i-b")])
    assert decide(snapshot, POLICY) == decide(snapshot, POLICY)


def test_a_boot_grace_must_be_positive():
    with pytest.raises(ValueError):
        Policy(boot_grace_s=0)
