"""A queue's depth on the moto server: the messages waiting and those a consumer holds."""

from __future__ import annotations

from gpuorch.aws.sqs import QueueDepth, queue_depth


def test_waiting_and_held_messages_are_counted_apart(provisioned, settings):
    sqs = provisioned.aws.sqs
    url = provisioned.aws.queue_url(settings.control_queue)
    assert queue_depth(sqs, url) == QueueDepth(visible=0, in_flight=0)

    for body in ("one", "two", "three"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    held = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)["Messages"]

    depth = queue_depth(sqs, url)
    assert (depth.visible, depth.in_flight, depth.total) == (2, len(held), 3)
