"""Values a process reuses for a while, kept fresh by a thread of their own while they are asked for."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any, Callable

log = logging.getLogger(__name__)

# A value asked for within this long is made again as it expires; one asked for less often is made again when it is
# next asked for (its reads then start beside that request, not before it).
KEEP_FRESH_S = 10.0
# What the refresher waits at most between two looks (a value asked for the first time is made by its asker).
IDLE_LOOK_S = 1.0


def close_all() -> None:
    """Stop the refresher of every cache of this process (the tests do, after each: no read of one test's outlives
    it)."""
    for cache in list(_caches):
        cache.close()


class FreshCache:
    """Values reused for a while per process (each name its own time to live). Only the process's first asker of a
    value waits for its reads (or every asker, with a time to live of 0); later askers get the last one made.

    While a value is asked for, a thread makes the next one as it expires, on its own schedule: a request does not
    set off those reads beside itself (a submission's estimate, say, beside its own job's way to the GPU, on the same
    tables), and what it gets is at most a time to live old.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, *, keep_fresh_s: float = KEEP_FRESH_S,
                 background: bool = True):
        # background=False: no refresher thread; whoever holds the cache calls refresh_due (the tests, on a clock).
        self._monotonic, self._keep_fresh_s, self._background = monotonic, keep_fresh_s, background
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, Any]] = {}  # name -> (when made or last tried, value)
        self._makers: dict[str, tuple[float, Callable[[], Any]]] = {}  # name -> (time to live, how to make it)
        self._asked: dict[str, float] = {}
        self._refresher: threading.Thread | None = None
        self._closed = False
        self._wake = threading.Event()
        self.made = 0  # values made, for the tests
        _caches.add(self)

    def close(self) -> None:
        """No more refreshes: the refresher stops, and an expired value is read again by its next asker."""
        with self._lock:
            self._closed, refresher = True, self._refresher
        self._wake.set()
        if refresher is not None and refresher is not threading.current_thread():
            refresher.join(10)

    def get(self, name: str, ttl_s: float, make: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._values.get(name)
            if ttl_s > 0:
                self._makers[name] = (ttl_s, make)
                self._asked[name] = self._monotonic()
                # Closed, an expired value has no refresher to make the next: its asker reads it.
                if hit is not None and (not self._closed or self._monotonic() - hit[0] < ttl_s):
                    if self._refresher is None and not self._closed and self._background:
                        self._refresher = threading.Thread(target=self._refresh, name="gpuorch-refresh", daemon=True)
                        self._refresher.start()
                    return hit[1]
        return self._make(name, make)  # the first asker, or a time to live of 0: read now

    def _make(self, name: str, make: Callable[[], Any]) -> Any:
        value = make()
        with self._lock:
            self._values[name] = (self._monotonic(), value)
            self.made += 1
        return value

    def _refresh(self) -> None:
        while (wait_s := self.refresh_due()) is not None:
            self._wake.wait(wait_s)
        with self._lock:
            self._refresher = None  # asked for again: a new refresher starts

    def refresh_due(self) -> float | None:
        """One pass of the refresher: make again each value asked for lately whose time to live has run out; the
        seconds until the next pass, or None when nothing is asked for any more (or the cache is closed)."""
        with self._lock:
            now = self._monotonic()
            wanted = [name for name, at in self._asked.items()
                      if now - at < self._keep_fresh_s and name in self._values]
            if not wanted or self._closed:
                return None
            due = [name for name in wanted if now - self._values[name][0] >= self._makers[name][0]]
            makers = {name: self._makers[name][1] for name in due}
        for name, make in makers.items():
            try:
                self._make(name, make)
            except Exception:  # noqa: BLE001 - the last value stands; tried again a time to live later
                log.warning("could not refresh %s; the last one read stands", name, exc_info=True)
                with self._lock:
                    self._values[name] = (self._monotonic(), self._values[name][1])
        with self._lock:
            now = self._monotonic()
            next_due = min((self._values[name][0] + self._makers[name][0] - now for name in wanted),
                           default=IDLE_LOOK_S)
        return min(IDLE_LOOK_S, max(0.01, next_due))


_caches: "weakref.WeakSet[FreshCache]" = weakref.WeakSet()
