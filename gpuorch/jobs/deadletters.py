"""The GPU dead-letter queue: read what reached it, and record those jobs as failed, saying why."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any

from gpuorch.jobs import states
from gpuorch.jobs.store import JobStore, TransitionRefused

log = logging.getLogger(__name__)

# Hidden this long after a sweep reads them, so one sweep never counts a message twice.
SWEEP_VISIBILITY_S = 60


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    job_id: str | None
    task: str | None
    problem: str | None = None  # why the body could not be read as a Celery task message


def read_dead_letter(message: dict[str, Any]) -> DeadLetter:
    """Parse a kombu SQS message (base64 JSON envelope with Celery's protocol 2 headers)."""
    message_id = message.get("MessageId", "?")
    try:
        envelope = json.loads(base64.b64decode(message["Body"], validate=True))
        headers = envelope["headers"]
        job_id, task = headers.get("id"), headers.get("task")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return DeadLetter(message_id, None, None, problem=f"not a Celery task message ({type(exc).__name__})")
    if not isinstance(job_id, str) or not job_id:
        return DeadLetter(message_id, None, task if isinstance(task, str) else None, problem="no task id in its headers")
    return DeadLetter(message_id, job_id, task if isinstance(task, str) else None)


def failure_reason(max_receive_count: int) -> str:
    return (
        f"the job's message reached the dead-letter queue after {max_receive_count} deliveries: "
        "each time, its worker stopped before the job finished (crash, out of memory, lost instance) "
        "or refused the message"
    )


def sweep_dead_letters(sqs, queue_url: str, jobs: JobStore, *, max_receive_count: int, limit: int = 100) -> list[DeadLetter]:
    """Mark failed every job whose message is in the dead-letter queue; the messages stay for inspection.

    Idempotent: a job already in a terminal status is left as it is.
    """
    seen: list[DeadLetter] = []
    while len(seen) < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=SWEEP_VISIBILITY_S,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            letter = read_dead_letter(message)
            seen.append(letter)
            if letter.job_id is None:
                log.warning("dead letter %s: %s", letter.message_id, letter.problem)
                continue
            try:
                jobs.transition(letter.job_id, states.FAILED, error=failure_reason(max_receive_count))
                log.warning("job %s: failed, its message reached the dead-letter queue", letter.job_id)
            except TransitionRefused as refused:
                if refused.current is None:
                    log.warning("dead letter %s: job %s has no record", letter.message_id, letter.job_id)
    return seen
