"""Publishing Celery's events from a thread of their own, a few per call, so that a worker never waits on SNS."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Events waiting for SNS past this many are dropped: an event lost is only an event, a worker's memory is not.
CAPACITY = 1000
# The thread goes after this long without an event; the next one starts it again.
IDLE_S = 30.0
# SNS takes up to 10 messages per call (PublishBatch). An event waits at most this long for others to go with it:
# a job's received and started events go in one call, made once the job is on its way rather than while it is
# being handed on, and a monitor sees them a tenth of a second later.
BATCH = 10
LINGER_S = 0.1


#: Publishes a batch: each item the (args, kwargs) one `submit` was given.
PublishMany = Callable[[list[tuple[tuple, dict]]], Any]


class BackgroundPublisher:
    """Calls `publish` with what `submit` was given, in order and up to `batch` at a time, on one thread per process.

    A worker's event loop sends a job's events (task-received, ...) between taking its message and handing it to the
    pool: an SNS call there delays every job by its round trip (more when SNS is slow), so the loop only queues it.
    """

    def __init__(self, publish: PublishMany, *, name: str, capacity: int = CAPACITY, idle_s: float = IDLE_S,
                 batch: int = BATCH, linger_s: float = LINGER_S):
        self._publish, self._name, self._capacity, self._idle_s = publish, name, capacity, idle_s
        self._batch, self._linger_s = batch, linger_s
        self._reset()

    def _reset(self) -> None:
        # Made anew in a forked process: its copies of the parent's lock and queue may be held or half full.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(self._capacity)
        self._thread: threading.Thread | None = None
        self._pending = 0  # submitted and not yet published (or failed)
        self._settled = threading.Condition(self._lock)
        self.dropped = 0

    def submit(self, *args: Any, **kwargs: Any) -> bool:
        """Queue one publish; False when it was dropped (the queue is full)."""
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            try:
                self._queue.put_nowait((args, kwargs))
            except queue.Full:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % self._capacity == 0:
                    log.warning("%s: %d event(s) dropped: SNS is behind by %d", self._name, self.dropped,
                                self._capacity)
                return False
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return True

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything submitted so far is published (or failed); False when `timeout_s` passed first."""
        if self._pid != os.getpid():
            return True  # nothing of this process's was queued
        with self._lock:
            return self._settled.wait_for(lambda: self._pending == 0, timeout_s)

    def _run(self) -> None:
        while True:
            try:
                items = [self._queue.get(timeout=self._idle_s)]
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            deadline = time.monotonic() + self._linger_s
            while len(items) < self._batch and (left := deadline - time.monotonic()) > 0:
                try:
                    items.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            try:
                self._publish(items)
            except Exception as exc:  # noqa: BLE001 - the loop must go on: the next events may pass
                log.warning("%s: %d event(s) not published: %s", self._name, len(items), exc)
            finally:
                with self._lock:
                    self._pending -= len(items)
                    if not self._pending:
                        self._settled.notify_all()
