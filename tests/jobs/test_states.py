"""The job status machine: statuses only move forward."""

import pytest

from gpuorch.jobs import states

S = states
CASES = [
    (S.QUEUED, S.RUNNING, True),
    (S.RUNNING, S.RUNNING, True),  # a redelivered job starts again
    (S.RUNNING, S.SUCCEEDED, True),
    (S.RUNNING, S.FAILED, True),
    (S.QUEUED, S.FAILED, True),
    (S.QUEUED, S.CANCELLED, True),
    (S.RUNNING, S.CANCELLED, True),
    (S.QUEUED, S.SUCCEEDED, False),
    (S.SUCCEEDED, S.RUNNING, False),
    (S.SUCCEEDED, S.FAILED, False),
    (S.FAILED, S.RUNNING, False),
    (S.FAILED, S.SUCCEEDED, False),
    (S.CANCELLED, S.RUNNING, False),
    (S.RUNNING, S.QUEUED, False),
    (S.SUCCEEDED, S.QUEUED, False),
]


@pytest.mark.parametrize("current,target,allowed", CASES)
def test_moves(current, target, allowed):
    assert states.can_move(current, target) is allowed


def test_terminal_statuses_have_no_way_out():
    for terminal in states.TERMINAL:
        assert not any(states.can_move(terminal, target) for target in states.STATUSES)


def test_unknown_status_is_an_error():
    with pytest.raises(ValueError, match="unknown job status"):
        states.allowed_from("paused")
