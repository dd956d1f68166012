"""Asking for a lifecycle check when a job is submitted, at most once every few seconds per process."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class CheckTrigger:
    """Asks for a check at most once per `min_interval_s` from this process: a burst of submissions
    starts a stopped GPU within seconds without flooding the control queue."""

    def __init__(self, send: Callable[[], None], min_interval_s: float, clock: Callable[[], float] = time.monotonic):
        self._send, self._interval, self._clock = send, min_interval_s, clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._interval:
                return False
            self._last = now
        try:
            self._send()
        except Exception:  # noqa: BLE001 - the job is accepted already; beat's next check catches up
            log.exception("could not ask for a lifecycle check")
            return False
        return True
