"""Monthly spend caps: refuse an owner's submissions once its GPU spend this month reaches its cap."""

from __future__ import annotations

import threading
import time
from typing import Callable

from gpuorch.errors import AdmissionRefused


class SpendCapReached(AdmissionRefused):
    """The owner's GPU spend this month reached its cap; `retry_after` is the seconds until the month ends."""

    def __init__(self, owner: str, spent_usd: float, cap_usd: float, retry_after: float):
        self.owner, self.spent_usd, self.cap_usd = owner, spent_usd, cap_usd
        super().__init__(f"The GPU spend of {owner} this month is ${spent_usd:.2f}, at its cap of ${cap_usd:.2f}; "
                         "submissions are refused until the month ends or the cap is raised.", retry_after)


def cap_for(key_cap_usd: float | None, default_cap_usd: float) -> float:
    """The cap a submission is held to: its key's own when it has one, else the deployment's (0: none)."""
    return default_cap_usd if key_cap_usd is None else key_cap_usd


class SpendGauge:
    """Each owner's spend this month (`read(owner)`), reused for `ttl_s` per process: reading it sums the month's
    runs and jobs."""

    def __init__(self, read: Callable[[str], float], *, ttl_s: float, until_reset: Callable[[], float],
                 monotonic: Callable[[], float] = time.monotonic):
        self._read = read
        self._ttl = ttl_s
        self._until_reset = until_reset
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._spent: dict[str, tuple[float, float]] = {}

    def spent(self, owner: str) -> float:
        now = self._monotonic()
        with self._lock:
            hit = self._spent.get(owner)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        spent = self._read(owner)
        with self._lock:
            self._spent[owner] = (now, spent)
        return spent

    def check(self, owner: str, cap_usd: float) -> None:
        """SpendCapReached when `owner` spent `cap_usd` or more this month (nothing read without a cap)."""
        if cap_usd <= 0:
            return
        spent = self.spent(owner)
        if spent >= cap_usd:
            raise SpendCapReached(owner, spent, cap_usd, self._until_reset())
