"""The GPU dead-letter queue: read what reached it and why, and record those jobs as failed, saying why."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.jobs import states
from gpuorch.jobs.store import JobStore, TransitionRefused

log = logging.getLogger(__name__)

# Hidden this long after a sweep reads them, so one sweep never counts a message twice; released after it.
SWEEP_VISIBILITY_S = 60

# Message attributes a GPU worker puts on a message it moved to the DLQ itself (gpuorch/celery/gate.py).
REASON = "gpuorch.reason"
SOURCE_MESSAGE_ID = "gpuorch.source-message-id"
REJECTED_BY = "gpuorch.rejected-by"
REJECTED_AT = "gpuorch.rejected-at"


def reason_attributes(reason: str, source_message_id: str, rejected_by: str, rejected_at: str) -> dict[str, Any]:
    """The SQS message attributes of a rejected message's copy in the DLQ."""
    values = {REASON: reason, SOURCE_MESSAGE_ID: source_message_id, REJECTED_BY: rejected_by, REJECTED_AT: rejected_at}
    return {name: {"DataType": "String", "StringValue": value or "-"} for name, value in values.items()}


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    job_id: str | None
    task: str | None
    problem: str | None = None  # why the body could not be read as a Celery task message
    reason: str | None = None  # why a GPU worker rejected it (None: SQS's redrive policy moved it)
    rejected_by: str | None = None
    source_message_id: str | None = None  # the GPU queue message it is a copy of, when a worker moved it
    receive_count: int | None = None  # ApproximateReceiveCount: deliveries, reads of the DLQ included
    receipt_handle: str | None = None
    body: str = ""


def read_dead_letter(message: dict[str, Any]) -> DeadLetter:
    """Parse a kombu SQS message (base64 JSON envelope with Celery's protocol 2 headers) and gpuorch's attributes."""
    attributes = {name: value.get("StringValue") for name, value in (message.get("MessageAttributes") or {}).items()}
    count = (message.get("Attributes") or {}).get("ApproximateReceiveCount")
    common = {
        "reason": attributes.get(REASON),
        "rejected_by": attributes.get(REJECTED_BY),
        "source_message_id": attributes.get(SOURCE_MESSAGE_ID),
        "receive_count": int(count) if count and count.isdigit() else None,
        "receipt_handle": message.get("ReceiptHandle"),
        "body": message.get("Body", ""),
    }
    message_id = message.get("MessageId", "?")
    try:
        envelope = json.loads(base64.b64decode(message["Body"], validate=True))
        headers = envelope["headers"]
        job_id, task = headers.get("id"), headers.get("task")
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        return DeadLetter(message_id, None, None, problem=f"not a Celery task message ({type(exc).__name__})", **common)
    task = task if isinstance(task, str) else None
    if not isinstance(job_id, str) or not job_id:
        return DeadLetter(message_id, None, task, problem="no task id in its headers", **common)
    return DeadLetter(message_id, job_id, task, **common)


def dead_letter_reason(letter: DeadLetter, max_receive_count: int) -> str:
    """Why the message is in the DLQ: the worker's reason, or what SQS's redrive policy implies."""
    if letter.reason:
        return f"rejected by {letter.rejected_by or 'a GPU worker'}: {letter.reason}"
    return f"delivered {max_receive_count} times, its worker died each time (or gave it back unfinished)"


def failure_reason(max_receive_count: int) -> str:
    return (
        f"the job's message reached the dead-letter queue after {max_receive_count} deliveries: "
        "each time, its worker stopped before the job finished (crash, out of memory, lost instance) "
        "or refused the message"
    )


def receive_all(sqs, queue_url: str, *, visibility_s: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages of the queue, each once, hidden for `visibility_s` while the caller works on them."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=0,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update((m["MessageId"], m) for m in fresh)
    return list(seen.values())


def release(sqs, queue_url: str, receipt_handles: list[str]) -> None:
    """Make messages read for a look visible again at once, for the next reader (best effort: they reappear anyway)."""
    for start in range(0, len(receipt_handles), 10):
        entries = [{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                   for i, handle in enumerate(receipt_handles[start:start + 10])]
        try:
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            log.warning("dead letters not released (visible again after their timeout): %s", exc)


def sweep_dead_letters(sqs, queue_url: str, jobs: JobStore, *, max_receive_count: int,
                       limit: int = 100) -> list[DeadLetter]:
    """Mark failed every job whose message is in the dead-letter queue; the messages stay for inspection.

    Idempotent: a job already in a terminal status is left as it is.
    """
    messages = receive_all(sqs, queue_url, visibility_s=SWEEP_VISIBILITY_S, limit=limit)
    seen: list[DeadLetter] = []
    try:
        for message in messages:
            letter = read_dead_letter(message)
            seen.append(letter)
            if letter.job_id is None:
                log.warning("dead letter %s: %s", letter.message_id, letter.problem)
                continue
            error = (f"its queue message was rejected: {letter.reason}" if letter.reason
                     else failure_reason(max_receive_count))
            try:
                jobs.transition(letter.job_id, states.FAILED, error=error)
                log.warning("job %s: failed, its message reached the dead-letter queue", letter.job_id,
                            extra={"job_id": letter.job_id})
            except TransitionRefused as refused:
                if refused.current is None:
                    log.warning("dead letter %s: job %s has no record", letter.message_id, letter.job_id)
    finally:
        # Redrive and listings read the same queue: hold nothing past the sweep.
        release(sqs, queue_url, [m["ReceiptHandle"] for m in messages])
    return seen
