"""The GPU worker's start-up: a problem that may pass is checked again for a while, one that cannot is refused at
once; the refusal is recorded where the lifecycle reads it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lifecycle.live.refusals import RefusalStore, fingerprint
from workers.checks import Problem
from workers.startup import PASS, REFUSE, RETRY, Findings, next_step, record_refusal, run_checks

ARRIVING = Problem("camera-angle: the server has no loras file 'x'", may_pass=True)
MISSING_NODE = Problem("camera-angle [top_down]: node 5: no node class 'LoraLoaderModelOnly'")


@pytest.mark.parametrize("problems,elapsed,retry,step", [
    ((), 0, 120, PASS),
    ((), 500, 120, PASS),
    ((ARRIVING,), 0, 120, RETRY),  # model files may still be arriving
    ((ARRIVING,), 119.9, 120, RETRY),
    ((ARRIVING,), 120, 120, REFUSE),  # they did not arrive in time: only a change can help now
    ((ARRIVING,), 0, 0, REFUSE),  # no retry configured
    ((MISSING_NODE,), 0, 120, REFUSE),  # cannot pass by itself: waiting would only be paid for
    ((ARRIVING, MISSING_NODE), 0, 120, REFUSE),
])
def test_next_step(problems, elapsed, retry, step):
    assert next_step(problems, elapsed, retry) == step


class HeldClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_checks_are_repeated_until_they_pass():
    clock, rounds = HeldClock(), [Findings((ARRIVING,)), Findings((ARRIVING,)), Findings(())]

    findings = run_checks(lambda: rounds.pop(0), 120, clock=clock, sleep=clock.sleep)

    assert findings.problems == () and clock.now == 20.0  # two waits of 10 s


def test_checks_that_keep_failing_are_refused_at_the_retry_deadline():
    clock, calls = HeldClock(), []

    def check() -> Findings:
        calls.append(clock())
        return Findings((ARRIVING,))

    findings = run_checks(check, 25, clock=clock, sleep=clock.sleep)

    assert findings.problems == (ARRIVING,)
    assert calls == [0.0, 10.0, 20.0, 25.0]  # the last wait shortened to the deadline


def test_a_problem_that_cannot_pass_is_refused_without_waiting():
    clock = HeldClock()
    findings = run_checks(lambda: Findings((MISSING_NODE, ARRIVING)), 120, clock=clock, sleep=clock.sleep)
    assert findings.problems == (MISSING_NODE, ARRIVING) and clock.now == 0.0


def test_a_refusal_is_recorded_with_its_fingerprint(provisioned, settings, caplog):
    store = RefusalStore(provisioned.aws.dynamodb, settings.control_table, instance_arn=provisioned.aws.instance_arn)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    checked = {"catalogue": "c1", "settings": "s1", "workflows": "w1", "gpuorch": "0.1.0"}

    refusal = record_refusal(store, "i-0aaa", Findings((MISSING_NODE,), checked), clock=lambda: at)

    [stored] = store.all()
    assert stored.refusal == refusal and stored.checked == checked
    assert (refusal.at, refusal.reasons, refusal.fingerprint) == (at, (MISSING_NODE.reason,), fingerprint(checked))
    assert f"refusing to start: {MISSING_NODE.reason}" in caplog.text
    assert "gpuorch gpu start i-0aaa" in caplog.text
