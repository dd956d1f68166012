"""The SQS transport's reading of an asynchronous receive's answer, failed receives included."""

import pytest

from gpuorch.celery.sqs_transport import Channel, may_poll, received_messages


@pytest.mark.parametrize("answer,messages", [
    ({"Messages": [{"MessageId": "1"}]}, [{"MessageId": "1"}]),
    ({}, []),
    ([], None),  # kombu's answer to a receive that timed out, failed with a 5xx or lost its connection
])
def test_received_messages(answer, messages):
    assert received_messages(answer) == messages


def test_a_failed_receive_delivers_nothing_and_raises_nothing():
    assert Channel._on_messages_ready(object(), "q", "q", []) == 0


ORDER = ["gpu", "gpu_low"]


@pytest.mark.parametrize("queue,found,consumed,polled", [
    ("gpu", {}, {"gpu", "gpu_low"}, True),  # the first queue never waits
    ("gpu_low", {}, {"gpu", "gpu_low"}, False),  # the normal queue has not answered yet
    ("gpu_low", {"gpu": True}, {"gpu", "gpu_low"}, False),  # it brought messages: more may wait there
    ("gpu_low", {"gpu": False}, {"gpu", "gpu_low"}, True),  # it came back empty
    ("gpu_low", {"gpu": True}, {"gpu_low"}, True),  # not consumed (cancelled): nothing to wait for
    ("control", {"gpu": True}, {"gpu", "control"}, True),  # a queue outside the order never waits
])
def test_a_queue_is_polled_once_every_queue_before_it_came_back_empty(queue, found, consumed, polled):
    assert may_poll(queue, ORDER, found, consumed) is polled


def test_a_receive_answered_after_the_channel_closed_asks_for_no_next_poll():
    closed = type("Closed", (), {"connection": None})()
    assert Channel._loop1(closed, "gpu") is None
