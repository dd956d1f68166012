"""The live lifecycle's policy of each check: the configured one, or one learned from the job table's recent jobs
as the simulator learns it; either keeps a GPU ready inside the operator's warm windows."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Callable, Protocol, Sequence

from gpuorch.jobs.store import Job, JobStore
from lifecycle.learning import LOOKBACK_S, UNIX_TO_MONDAY_S, Economics, History, plan, start_price
from lifecycle.model import Policy, Snapshot
from lifecycle.schedule import WarmWindow, with_windows

# The job table is read again at most this often: a plan reads weeks of history, and minutes add little to it.
REFRESH_S = 600.0
# GPUORCH_LIFECYCLE_POLICY's values.
FIXED, LEARNED = "fixed", "learned"
LIFECYCLE_POLICIES = (FIXED, LEARNED)


class Planner(Protocol):
    def __call__(self, snapshot: Snapshot) -> tuple[Policy, str]:
        """(the policy `decide` applies to this snapshot, why, for the check's log)."""


def _joined(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


class FixedPlanner:
    """The configured policy, with a GPU kept ready inside the warm windows (opened `lead_s` early)."""

    def __init__(self, base: Policy, windows: Sequence[WarmWindow] = (), lead_s: float = 0.0):
        self.base, self.windows, self.lead_s = base, tuple(windows), lead_s

    def __call__(self, snapshot: Snapshot) -> tuple[Policy, str]:
        policy, why = with_windows(self.base, self.windows, snapshot.now, self.lead_s)
        return policy, _joined(f"fixed: idle {self.base.idle_stop_s:.0f} s", why)


class LearningPlanner:
    """`base` with the idle time, pre-warm and scale-out that lifecycle.learning.plan learns from the jobs submitted
    in the last LOOKBACK_S, weighed at the price of the market a start takes now; and the warm windows."""

    def __init__(self, jobs: JobStore, base: Policy, economics: Economics, *, windows: Sequence[WarmWindow] = (),
                 lead_s: float = 0.0, refresh_s: float = REFRESH_S):
        self.jobs, self.base, self.economics = jobs, base, economics
        self.windows, self.lead_s, self.refresh_s = tuple(windows), lead_s, refresh_s
        self._lock = threading.Lock()
        self._read_at: datetime | None = None
        self._history: list[Job] = []

    def history(self, now: datetime) -> History:
        """The recent jobs on the plans' clock (seconds from a Monday); a job not yet run counts the mean."""
        with self._lock:
            if self._read_at is None or (now - self._read_at).total_seconds() >= self.refresh_s:
                self._history = self.jobs.created_between(now - timedelta(seconds=LOOKBACK_S), now)
                self._read_at = now
            jobs = list(self._history)
        arrivals = [datetime.fromisoformat(job.created_at).timestamp() - UNIX_TO_MONDAY_S for job in jobs]
        gpu = [float(job.gpu_seconds) if job.gpu_seconds else self.economics.mean_job_s for job in jobs]
        return History(arrivals, gpu)

    def __call__(self, snapshot: Snapshot) -> tuple[Policy, str]:
        now = snapshot.now
        economics = self.economics.at_price(start_price(snapshot, self.base))
        learned, why = plan(self.history(now), now.timestamp() - UNIX_TO_MONDAY_S, self.base, economics)
        policy, warm = with_windows(learned, self.windows, now, self.lead_s)
        return policy, _joined(f"learned: {why}", warm)


def planner_for(kind: str, base: Policy, *, jobs: Callable[[], JobStore], economics: Economics,
                windows: Sequence[WarmWindow] = (), lead_s: float = 0.0) -> Planner:
    """The planner GPUORCH_LIFECYCLE_POLICY names (`jobs` is asked for the job table only when it learns)."""
    if kind == LEARNED:
        return LearningPlanner(jobs(), base, economics, windows=windows, lead_s=lead_s)
    if kind == FIXED:
        return FixedPlanner(base, windows, lead_s)
    raise ValueError(f"unknown lifecycle policy {kind!r} (one of {', '.join(LIFECYCLE_POLICIES)})")
