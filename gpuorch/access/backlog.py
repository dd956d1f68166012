"""The GPU backlog limit: refuse submissions the GPU cannot reach soon instead of queueing them."""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable

from gpuorch.aws.sqs import queue_depth
from gpuorch.access.ratelimit import TooManyAtOnce
from gpuorch.errors import AdmissionRefused
from gpuorch.fresh import FreshCache

# What a refused client is told to wait: the backlog drains at the GPU's pace, a job every few seconds at best.
RETRY_AFTER_S = 30


class BacklogFull(AdmissionRefused):
    """The GPU queue holds too many jobs; the message names the numbers."""

    def __init__(self, message: str):
        super().__init__(message, RETRY_AFTER_S)


def backlog_refusal(depth: int, max_backlog: int, adding: int = 1) -> str | None:
    """Why a submission of `adding` jobs is refused with `depth` jobs queued or in flight; None when they may be
    queued."""
    if max_backlog <= 0 or depth + adding <= max_backlog:
        return None
    if adding > 1:
        return (f"The GPU queues hold {depth} jobs queued or running: {adding} more would pass their limit of "
                f"{max_backlog} (GPUORCH_MAX_BACKLOG); try again later.")
    return (f"The GPU queues already hold {depth} jobs queued or running, at their limit of {max_backlog} "
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
        self._fresh = FreshCache(monotonic)

    def depth(self) -> int:
        with self._lock:
            now = self._monotonic()
            if self._read is not None and now - self._read[0] < self._ttl:
                return self._read[1]
        return self._read_now(now)

    def recent_depth(self) -> int:
        """The depth for an estimate, which need not wait on SQS: the last one read, kept fresh by a thread while
        estimates ask for it (gpuorch.fresh); only the first (or each, with a ttl of 0) is read at once."""
        return self._fresh.get("depth", self._ttl, lambda: self._read_now(self._monotonic()))

    def _read_now(self, now: float) -> int:
        depth = sum(queue_depth(self._sqs, url).total for url in self._queue_urls())
        with self._lock:
            self._read = (now, depth)
        return depth

    def check(self, max_backlog: int, adding: int = 1) -> None:
        """BacklogFull when `adding` more jobs would pass the limit (no call at all without one); TooManyAtOnce when
        they always would."""
        if max_backlog <= 0:
            return
        if adding > max_backlog:
            raise TooManyAtOnce({"items": [
                f"{adding} items: more than the GPU backlog ever holds (GPUORCH_MAX_BACKLOG={max_backlog}); send at "
                f"most {max_backlog} at a time"]})
        reason = backlog_refusal(self.depth(), max_backlog, adding)
        if reason:
            raise BacklogFull(reason)
