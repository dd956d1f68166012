"""The GPU backlog limit: refuse submissions the GPU cannot reach soon instead of queueing them."""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable

from gpuorch.aws.sqs import queue_depth
from gpuorch.errors import AdmissionRefused

# What a refused client is told to wait: the backlog drains at the GPU's pace, a job every few seconds at best.
RETRY_AFTER_S = 30


class BacklogFull(AdmissionRefused):
    """The GPU queue holds too many jobs; the message names the numbers."""

    def __init__(self, message: str):
        super().__init__(message, RETRY_AFTER_S)


def backlog_refusal(depth: int, max_backlog: int) -> str | None:
    """Why a submission is refused with `depth` jobs queued or in flight; None when it may be queued."""
    if max_backlog <= 0 or depth < max_backlog:
        return None
    return (f"The GPU queue already holds {depth} jobs queued or running, at its limit of {max_backlog} "
            f"(GPUORCH_MAX_BACKLOG); try again later.")


class BacklogGauge:
    """The GPU queues' depth (visible + in flight, normal and low priority together), reused for `ttl_s` per
    process."""

    def __init__(self, sqs_client, queue_urls: Callable[[], list[str]], *, ttl_s: float,
                 monotonic: Callable[[], float] = time.monotonic):
        self._sqs = sqs_client
        self._queue_urls = functools.cache(queue_urls)  # the URLs never change; asking for them is a call each
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._read: tuple[float, int] | None = None

    def depth(self) -> int:
        with self._lock:
            now = self._monotonic()
            if self._read is not None and now - self._read[0] < self._ttl:
                return self._read[1]
        depth = sum(queue_depth(self._sqs, url).total for url in self._queue_urls())
        with self._lock:
            self._read = (now, depth)
        return depth

    def check(self, max_backlog: int) -> None:
        """BacklogFull when the queue is at its limit (no call at all without one)."""
        if max_backlog <= 0:
            return
        reason = backlog_refusal(self.depth(), max_backlog)
        if reason:
            raise BacklogFull(reason)
