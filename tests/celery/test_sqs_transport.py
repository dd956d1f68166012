"""The SQS transport's reading of an asynchronous receive's answer, failed receives included."""

import pytest

from gpuorch.celery.sqs_transport import Channel, received_messages


@pytest.mark.parametrize("answer,messages", [
    ({"Messages": [{"MessageId": "1"}]}, [{"MessageId": "1"}]),
    ({}, []),
    ([], None),  # kombu's answer to a receive that timed out, failed with a 5xx or lost its connection
])
def test_received_messages(answer, messages):
    assert received_messages(answer) == messages


def test_a_failed_receive_delivers_nothing_and_raises_nothing():
    assert Channel._on_messages_ready(object(), "q", "q", []) == 0
