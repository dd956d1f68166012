"""HeldMessages, fed by the AWS proxy: what a consumer received and never deleted is given back at once."""

from __future__ import annotations

import uuid

import boto3

from tests.support.aws_proxy import AwsProxy
from tests.support.held_messages import HeldMessages


def sqs_client(endpoint: str):
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")


def test_release_gives_back_only_what_was_received_and_not_deleted(moto_endpoint):
    held = HeldMessages()
    with AwsProxy(moto_endpoint) as proxy:
        proxy.observe(held.observe)
        consumer, checker = sqs_client(proxy.url), sqs_client(moto_endpoint)
        queue = f"held-{uuid.uuid4().hex[:8]}"
        other = f"held-other-{uuid.uuid4().hex[:8]}"
        url = checker.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
        other_url = checker.create_queue(QueueName=other, Attributes={"VisibilityTimeout": "600"})["QueueUrl"]
        for body in ("acknowledged", "given back", "held"):
            checker.send_message(QueueUrl=url, MessageBody=body)
        checker.send_message(QueueUrl=other_url, MessageBody="another queue's")

        received = {m["Body"]: m for m in consumer.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]}
        consumer.receive_message(QueueUrl=other_url)
        consumer.delete_message(QueueUrl=url, ReceiptHandle=received["acknowledged"]["ReceiptHandle"])
        consumer.change_message_visibility(QueueUrl=url, ReceiptHandle=received["given back"]["ReceiptHandle"],
                                           VisibilityTimeout=0)
        assert sorted(held.held(queue).values()) == ["held"]

        released = held.release(checker, queue)

    assert list(released.values()) == ["held"]
    assert released == {received["held"]["MessageId"]: "held"}
    # Visible again at once, long before the 600 s visibility timeout; the other queue's message is still in flight.
    again = checker.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    assert sorted(m["Body"] for m in again) == ["given back", "held"]
    assert "Messages" not in checker.receive_message(QueueUrl=other_url, WaitTimeSeconds=0)
    assert held.release(checker, queue) == {}
