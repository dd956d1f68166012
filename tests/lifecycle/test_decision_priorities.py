"""The decision and the two priorities and deadlines: low-priority jobs start nothing but keep a running instance busy;
visible messages of jobs that can no longer run (expired, cancelled) start nothing."""

from __future__ import annotations

import dataclasses

import pytest

from lifecycle.decision import decide
from tests.lifecycle.test_decision import IDLE_LONG, POLICY, beat, gpu, snap


def low(snapshot, visible=0, in_flight=0, startable=None):
    return dataclasses.replace(snapshot, low_visible=visible, low_in_flight=in_flight, startable=startable)


# (case, snapshot, the start/stop/blocked actions expected)
CASES = [
    ("a backlog of low-priority jobs alone starts nothing", low(snap(gpu("stopped")), visible=500), []),
    ("... nor does one in flight", low(snap(gpu("stopped")), in_flight=1), []),
    ("a normal job starts an instance, whatever low-priority work waits",
     low(snap(gpu("stopped"), visible=1), visible=500), [("start", "i-a")]),
    ("low-priority jobs do not call for a second instance",
     low(snap(gpu("running"), gpu("stopped", "i-b"), visible=1, beats=[beat(jobs=("j1",))]), visible=500), []),
    ("a running idle instance is kept while low-priority jobs wait: it takes them",
     low(snap(gpu("running"), beats=[beat()], activity={"i-a": IDLE_LONG}), visible=3), []),
    ("... and while one runs on it", low(snap(gpu("running"), beats=[beat()], activity={"i-a": IDLE_LONG}),
                                         in_flight=1), []),
    ("once they are done it stops when idle", low(snap(gpu("running"), beats=[beat()],
                                                       activity={"i-a": IDLE_LONG})), [("stop", "i-a")]),
    ("visible messages of jobs that can no longer run start nothing",
     low(snap(gpu("stopped"), visible=4), startable=0), []),
    ("... the ones that may still run do", low(snap(gpu("stopped"), visible=4), startable=1), [("start", "i-a")]),
    ("the table counting more than SQS shows changes nothing",
     low(snap(gpu("stopped"), visible=1), startable=9), [("start", "i-a")]),
]


@pytest.mark.parametrize("case,snapshot,expected", CASES, ids=[c[0] for c in CASES])
def test_priorities_and_deadlines(case, snapshot, expected):
    decision = decide(snapshot, POLICY)
    assert [(a.kind, a.instance_id) for a in decision.actions if a.kind in ("start", "stop", "blocked")] == expected


def test_a_second_instance_is_wanted_by_the_jobs_that_may_run_only():
    policy = dataclasses.replace(POLICY, max_instances=2, backlog_per_instance=10)
    running = snap(gpu("running"), gpu("stopped", "i-b"), visible=15, beats=[beat(jobs=("j1",))])
    assert decide(running, policy).starts == ("i-b",)
    assert decide(low(running, startable=5), policy).starts == ()


def test_why_nothing_starts_is_said():
    [waiting_low] = decide(low(snap(gpu("stopped")), visible=3), POLICY).actions
    assert "3 low-priority job(s) waiting: they start no instance" in waiting_low.reason
    [dead] = decide(low(snap(gpu("stopped"), visible=2), startable=0), POLICY).actions
    assert "2 visible message(s) of jobs that expired or were cancelled" in dead.reason
    kept = decide(low(snap(gpu("running"), beats=[beat()], activity={"i-a": IDLE_LONG}), visible=3), POLICY)
    assert "3 low-priority visible" in kept.actions[0].reason
    assert "low=3+0" in str(kept)
