"""The SQS messages a stack's processes hold, read from their traffic through the AWS proxy; and giving them back.

A worker killed mid-job leaves the messages it received in flight until the queue's visibility timeout (a
minute or more in these tests) hands them back. SQS's own ChangeMessageVisibility(VisibilityTimeout=0), given
a message's receipt handle, makes it visible at once. The processes' ReceiveMessage answers carry those
handles, and their DeleteMessage calls say which messages were acknowledged, so a test that has killed the
holder can give back exactly what the visibility timeout would: the messages received and never deleted.

    held = HeldMessages()
    proxy.observe(held.observe)        # before the stack starts: tests/support/aws_proxy.py
    ...kill the worker...
    released = held.release(sqs, queue_name)   # {message id: body}, visible again now
"""

from __future__ import annotations

import base64
import json
import threading

from tests.support.aws_proxy import Request


class HeldMessages:
    """Every message the processes received through the proxy and have not deleted, by queue name."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, tuple[str, str]]] = {}  # queue -> message id -> (receipt handle, body)
        self._received: dict[str, tuple[str, str]] = {}  # every receipt handle given out -> (queue, message id)

    def observe(self, request: Request, status: int, body: bytes) -> None:
        """An AwsProxy observer: notes SQS receives, deletes and visibility changes that moto accepted."""
        if status != 200 or not request.target.startswith("AmazonSQS."):
            return
        params = json.loads(request.body or b"{}")
        queue = params.get("QueueUrl", "").rsplit("/", 1)[-1]
        with self._lock:
            if request.operation == "ReceiveMessage":
                for message in json.loads(body).get("Messages", []):
                    self._held.setdefault(queue, {})[message["MessageId"]] = (message["ReceiptHandle"], message["Body"])
                    self._received[message["ReceiptHandle"]] = (queue, message["MessageId"])
            elif request.operation == "DeleteMessage":
                self._forget(params["ReceiptHandle"])
            elif request.operation == "DeleteMessageBatch":
                for entry in params["Entries"]:
                    self._forget(entry["ReceiptHandle"])
            elif request.operation == "ChangeMessageVisibility" and int(params["VisibilityTimeout"]) == 0:
                self._forget(params["ReceiptHandle"])  # given back by its holder (e.g. a consumer shutting down)

    def _forget(self, receipt_handle: str) -> None:
        queue, message_id = self._received.get(receipt_handle, (None, None))
        self._held.get(queue, {}).pop(message_id, None)

    def held(self, queue: str) -> dict[str, str]:
        """The messages of `queue` received and not deleted: {message id: body}."""
        with self._lock:
            return {message_id: body for message_id, (_handle, body) in self._held.get(queue, {}).items()}

    def release(self, sqs, queue: str) -> dict[str, str]:
        """Make the messages of `queue` still held visible again now, as their visibility timeout would later.

        Only once their holders are gone: a live consumer's message made visible would be delivered twice.
        Returns them, {message id: body}.
        """
        with self._lock:
            held = self._held.pop(queue, {})
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        for handle, _body in held.values():
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
        return {message_id: body for message_id, (_handle, body) in held.items()}


def task_id(body: str) -> str:
    """The Celery task id (a job's id) of a kombu SQS message body: base64 JSON whose headers carry it."""
    return json.loads(base64.b64decode(body))["headers"]["id"]
