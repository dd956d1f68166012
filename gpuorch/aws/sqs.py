"""An SQS queue's depth: the messages waiting and those a consumer holds, read in one call."""

from __future__ import annotations

from dataclasses import dataclass

VISIBLE = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"


@dataclass(frozen=True)
class QueueDepth:
    visible: int  # waiting to be received
    in_flight: int  # received and not yet deleted (a job running, or a message a consumer holds)

    @property
    def total(self) -> int:
        return self.visible + self.in_flight


def queue_depth(sqs_client, queue_url: str) -> QueueDepth:
    """The queue's depth, as SQS approximates it (one GetQueueAttributes)."""
    attributes = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[VISIBLE, IN_FLIGHT])["Attributes"]
    return QueueDepth(visible=int(attributes.get(VISIBLE, 0)), in_flight=int(attributes.get(IN_FLIGHT, 0)))
