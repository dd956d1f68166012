"""kombu's SQS transport, with a receive that failed (timeout, 5xx, lost connection) read as an empty one."""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import SQS

log = logging.getLogger(__name__)


def received_messages(answer: Any) -> list[dict[str, Any]] | None:
    """The messages of an asynchronous ReceiveMessage answer; None when the receive failed.

    kombu 5.7 answers a receive that timed out, failed with a 5xx or lost its connection with `[]` in
    place of the parsed response (so that the worker does not hang), then reads that as a response.
    """
    if not isinstance(answer, dict):
        return None
    return answer.get("Messages") or []


class Channel(SQS.Channel):
    def _on_messages_ready(self, queue, qname, messages):
        # Read as a response, kombu's [] raises AttributeError, which Celery takes for an unrecoverable
        # error: the whole worker stops at an SQS blip. It means no messages this time; the next poll retries.
        if received_messages(messages) is None:
            log.warning("receive from %s failed (SQS unreachable or erring); polling again", qname)
            return 0
        return super()._on_messages_ready(queue, qname, messages)


class Transport(SQS.Transport):
    Channel = Channel
