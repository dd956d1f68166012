"""The replaced CloudWatch rule: alarm states, the stop on a transition into ALARM, the start on a submission."""

import pytest

from lifecycle.model import Action, Instance
from lifecycle.simulation.replaced import ReplacedRule, alarm_state, on_alarm, on_submit, period_empty


@pytest.mark.parametrize("samples,empty", [([], True), ([0, 0, 0, 0, 0], True), ([0, 0, 1, 0, 0], False)])
def test_period_empty(samples, empty):
    assert period_empty(samples) is empty


@pytest.mark.parametrize("maxima,state", [
    ([0] * 5, "INSUFFICIENT_DATA"),
    ([0] * 6, "ALARM"),
    ([3] + [0] * 6, "ALARM"),
    ([0] * 5 + [1], "OK"),
    ([0, 0, 2, 0, 0, 0, 0], "OK"),
])
def test_alarm_state(maxima, state):
    assert alarm_state(maxima) == state


def test_a_shorter_alarm():
    assert alarm_state([1, 0, 0], ReplacedRule(periods=2)) == "ALARM"


RUNNING = (Instance("i-a", "running"),)


@pytest.mark.parametrize("previous,current,instances,stops", [
    ("OK", "ALARM", RUNNING, ["i-a"]),
    ("INSUFFICIENT_DATA", "ALARM", RUNNING, ["i-a"]),
    ("ALARM", "ALARM", RUNNING, []),                 # alarms act on a change of state only
    ("OK", "OK", RUNNING, []),
    ("OK", "ALARM", (Instance("i-a", "stopped"),), []),
    ("OK", "ALARM", (Instance("i-a", "pending"),), []),
])
def test_on_alarm(previous, current, instances, stops):
    assert [a.instance_id for a in on_alarm(previous, current, instances)] == stops


@pytest.mark.parametrize("state,expected", [
    ("stopped", [Action("start", "i-a", "submission found the GPU stopped")]),
    ("running", []),
    ("pending", []),
])
def test_on_submit(state, expected):
    assert on_submit((Instance("i-a", state),)) == expected


def test_a_submission_cannot_start_a_stopping_instance():
    [action] = on_submit((Instance("i-a", "stopping"),))
    assert action.kind == "none" and "not retried" in action.reason
