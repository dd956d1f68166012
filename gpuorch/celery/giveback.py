"""A GPU worker on an interrupted spot instance: it stops taking messages, and a job it cannot finish goes back to the
queue at once (visible again now, not after the queue's visibility timeout) for another instance to take."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)


def give_back_now(sqs_client, request: Any) -> bool:
    """Make the task's SQS message visible again at once (ChangeMessageVisibility to 0); False when it cannot be.

    kombu's SQS transport puts the message it received, with its receipt handle, and its queue's URL in the
    delivery info of the message's properties, which Celery hands the task as `request.properties`. Not given
    back, the message still returns after its visibility timeout: the job is late, never lost.
    """
    delivery = (getattr(request, "properties", None) or {}).get("delivery_info") or {}
    message, queue_url = delivery.get("sqs_message") or {}, delivery.get("sqs_queue")
    if not message.get("ReceiptHandle") or not queue_url:
        log.warning("task %s: no SQS receipt handle in its request; it comes back after the visibility timeout",
                    getattr(request, "id", "?"))
        return False
    try:
        sqs_client.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                             VisibilityTimeout=0)
    except (BotoCoreError, ClientError) as exc:
        log.warning("task %s: not given back now (%s); it comes back after the visibility timeout", request.id, exc)
        return False
    log.info("task %s: its message is visible again for another instance", request.id)
    return True


def stop_consuming(consumer: Any, queue: str) -> None:
    """Stop the worker's consumer taking messages from `queue`, from any thread: the worker's event loop cancels it
    (as Celery's remote `cancel_consumer` does), and kombu gives back what it received and had not handed over."""
    consumer.call_soon(consumer.cancel_task_queue, queue)
