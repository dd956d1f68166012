"""The alternative a user weighs: a per-second serverless GPU, replayed over the same trace for every comparison.

A platform of this kind (an L40S billed per second) wakes a worker for a job when no warm one is idle, bills it
from wake-up until it stops, keeps it warm for a short idle timeout after its last job, and runs one job per
worker, so concurrent jobs get workers of their own. The defaults are such an offer's published figures.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Sequence

from lifecycle.billing import CostReport
from lifecycle.simulation.scenario import SimulationResult
from lifecycle.simulation.workload import Job


@dataclass(frozen=True)
class Serverless:
    """A per-second serverless GPU: `usd_per_s` from wake-up to stop, `cold_start_s` before a fresh worker's
    first job, `idle_timeout_s` of warmth after each job. One job per worker; as many workers as jobs at once."""

    usd_per_s: float = 0.00053
    cold_start_s: float = 60.0
    idle_timeout_s: float = 5.0
    name: str = "serverless"

    def __post_init__(self) -> None:
        if self.usd_per_s <= 0 or min(self.cold_start_s, self.idle_timeout_s) < 0:
            raise ValueError("a serverless price must be positive and its times not negative")

    def describe(self) -> str:
        return (f"{self.name}: ${self.usd_per_s:.5f}/s (${self.usd_per_s * 3600:.2f}/h) from wake-up, cold start "
                f"{self.cold_start_s:.0f} s, idle {self.idle_timeout_s:.0f} s, a worker per concurrent job")


def simulate_serverless(trace: Sequence[Job], offer: Serverless = Serverless()) -> SimulationResult:
    """What `trace` costs and waits on `offer`: each job takes a warm idle worker if one is left, else wakes one."""
    busy: list[tuple[float, int]] = []  # (free at, worker): running a job, or waking up for one
    idle: list[tuple[float, int]] = []  # (free since, worker): warm, until its idle timeout passes
    awake: dict[int, float] = {}  # worker -> woke at
    billed = boot = 0.0
    waits: list[float] = []
    wakes = 0
    for job in sorted(trace):
        now = job.arrival_s
        while busy and busy[0][0] <= now:
            heapq.heappush(idle, heapq.heappop(busy))
        while idle and idle[0][0] + offer.idle_timeout_s < now:  # gone cold: billed up to its idle timeout
            free_since, worker = heapq.heappop(idle)
            billed += free_since + offer.idle_timeout_s - awake.pop(worker)
        if idle:
            # The warmest worker, the one that finished last, so that the others go cold first.
            warm = max(idle)
            idle.remove(warm)
            heapq.heapify(idle)
            worker, start = warm[1], now
        else:
            worker, start = wakes, now + offer.cold_start_s
            awake[worker] = now
            wakes += 1
            boot += offer.cold_start_s
        waits.append(start - now)
        heapq.heappush(busy, (start + job.gpu_s, worker))
    for free_since, worker in busy + idle:
        billed += free_since + offer.idle_timeout_s - awake.pop(worker)
    work = sum(job.gpu_s for job in trace)
    span = (max(j.arrival_s for j in trace) - min(j.arrival_s for j in trace)) if trace else 0.0
    cost = CostReport(period_s=span, starts=wakes, billed_s=billed, busy_s=work, boot_s=boot,
                      idle_s=max(0.0, billed - work - boot), dollars=billed * offer.usd_per_s, jobs=len(trace))
    return SimulationResult(policy=offer.name, jobs=len(trace), completed=len(trace), failed=0, unserved=0,
                            interrupted=0, starts=wakes, cost=cost, waits_s=tuple(waits))
