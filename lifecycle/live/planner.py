"""The live lifecycle's policy of each check, learned from the job table's recent jobs as the simulator learns it."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Callable

from gpuorch.clock import utc_now
from gpuorch.jobs.store import Job, JobStore
from lifecycle.learning import LOOKBACK_S, UNIX_TO_MONDAY_S, Economics, History, plan
from lifecycle.model import Policy

# The job table is read again at most this often: a plan reads weeks of history, and minutes add little to it.
REFRESH_S = 600.0


class LearningPlanner:
    """The policy `decide` applies at each check: `base` with the idle time, pre-warm and scale-out that
    lifecycle.learning.plan learns from the jobs submitted in the last LOOKBACK_S."""

    def __init__(self, jobs: JobStore, base: Policy, economics: Economics, *, refresh_s: float = REFRESH_S,
                 clock: Callable[[], datetime] = utc_now):
        self.jobs, self.base, self.economics = jobs, base, economics
        self.refresh_s, self.clock = refresh_s, clock
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

    def policy(self, now: datetime | None = None) -> tuple[Policy, str]:
        """(the policy of this moment, why), for the check to decide by and to log."""
        now = now or self.clock()
        return plan(self.history(now), now.timestamp() - UNIX_TO_MONDAY_S, self.base, self.economics)
