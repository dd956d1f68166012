"""Invariant 1: the GPU queue's visibility timeout must outlast the jobs it protects."""

import pytest

from workers.checks import SAFETY_MARGIN_S, visibility_problems


@pytest.mark.parametrize("visibility,limit,ok", [
    (300, 120, True),  # the defaults: 2 x 120 + 30 = 270
    (270, 120, True),
    (269, 120, False),
    (300, 150, False),
    (1800, 600, True),
    (60, 60, False),
])
def test_visibility_against_time_limit(visibility, limit, ok):
    assert (visibility_problems(visibility, limit) == []) is ok


def test_the_refusal_says_what_to_change():
    [problem] = visibility_problems(100, 120)
    assert "GPUORCH_VISIBILITY_TIMEOUT" in problem and "GPUORCH_TASK_TIME_LIMIT" in problem
    assert str(2 * 120 + SAFETY_MARGIN_S) in problem


def test_without_a_held_message_one_job_suffices():
    assert visibility_problems(150, 120, messages_held=0) == []
