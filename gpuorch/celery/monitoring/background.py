"""Publishing Celery's events from a thread of their own, so that a worker's event loop never waits on SNS."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Events waiting for SNS past this many are dropped: an event lost is only an event, a worker's memory is not.
CAPACITY = 1000
# The thread goes after this long without an event; the next one starts it again.
IDLE_S = 30.0


class BackgroundPublisher:
    """Calls `publish` with what each `submit` was given, in order, on one thread per process.

    A worker's event loop sends a job's events (task-received, ...) between taking its message and handing it to the
    pool: an SNS call there delays every job by its round trip (more when SNS is slow), so the loop only queues it.
    """

    def __init__(self, publish: Callable[..., Any], *, name: str, capacity: int = CAPACITY, idle_s: float = IDLE_S):
        self._publish, self._name, self._capacity, self._idle_s = publish, name, capacity, idle_s
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
                args, kwargs = self._queue.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self._publish(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the loop must go on: the next event may pass
                log.warning("%s: an event was not published: %s", self._name, exc)
            finally:
                with self._lock:
                    self._pending -= 1
                    if not self._pending:
                        self._settled.notify_all()
