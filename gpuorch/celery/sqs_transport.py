"""kombu's SQS transport, with a receive that failed (timeout, 5xx, lost connection) read as an empty one, and queues
drained in an order: SQS has no priority within a queue, so low-priority jobs have a queue of their own, which a
worker polls only while every queue before it came back empty from its last receive."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from kombu.transport import SQS

log = logging.getLogger(__name__)

#: The broker transport option naming the queues in the order a worker drains them (gpuorch.celery.app).
QUEUE_ORDER_OPTION = "gpuorch_queue_order"


def received_messages(answer: Any) -> list[dict[str, Any]] | None:
    """The messages of an asynchronous ReceiveMessage answer; None when the receive failed.

    kombu 5.7 answers a receive that timed out, failed with a 5xx or lost its connection with `[]` in
    place of the parsed response (so that the worker does not hang), then reads that as a response.
    """
    if not isinstance(answer, dict):
        return None
    return answer.get("Messages") or []


def may_poll(queue: str, order: Sequence[str], found: Mapping[str, bool], consumed: Collection[str]) -> bool:
    """Whether a worker receives from `queue` now. A queue listed in `order` waits while a queue before it that the
    worker consumes found messages at its last receive, or has not answered one yet; any other queue never waits.

    So a low-priority message is received only once the normal queue came back empty (a long poll of
    GPUORCH_RECEIVE_WAIT_SECONDS, answered at once when it holds messages): normal jobs go first, up to messages
    that arrive while both receives are in flight.
    """
    if queue not in order:
        return True
    before = order[:order.index(queue)]
    return all(found.get(earlier) is False for earlier in before if earlier in consumed)


class Channel(SQS.Channel):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._queue_order: list[str] = list(self.transport_options.get(QUEUE_ORDER_OPTION) or [])
        self._found: dict[str, bool] = {}  # queue name -> whether its last receive brought messages

    def _loop1(self, queue, messages_fetched=None):
        # A long poll answered after the channel closed (a worker stopping) has no connection to poll again with.
        if self.connection is None:
            return None
        return super()._loop1(queue, messages_fetched)

    def _schedule_queue(self, queue):
        if queue in self._active_queues and not may_poll(queue, self._queue_order, self._found, self._active_queues):
            # Asked again after the polling interval, as after an empty receive.
            return self._loop1(queue)
        return super()._schedule_queue(queue)

    def _on_messages_ready(self, queue, qname, messages):
        received = received_messages(messages)
        # Read as a response, kombu's [] raises AttributeError, which Celery takes for an unrecoverable
        # error: the whole worker stops at an SQS blip. It means no messages this time; the next poll retries.
        if received is None:
            log.warning("receive from %s failed (SQS unreachable or erring); polling again", qname)
            return 0
        self._found[qname] = bool(received)
        return super()._on_messages_ready(queue, qname, messages)


class Transport(SQS.Transport):
    Channel = Channel
