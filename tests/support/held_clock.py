"""Monotonic seconds that move only when a test says so, for supervisors and timers that take a clock."""

from __future__ import annotations


class HeldClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
