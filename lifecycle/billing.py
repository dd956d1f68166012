"""EC2 billing arithmetic: billed seconds of a run, dollars of runs, and a cost report over a period."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

# Linux on-demand and spot instances are billed per second while `running`, at least 60 s per start;
# pending, stopping and stopped are not billed.
MIN_BILLED_S = 60.0


@dataclass(frozen=True)
class Run:
    """One stretch of an instance in the `running` state, on any clock counted in seconds.

    `boot_s` is the part of it spent before the worker was ready (OS boot and model load).
    """

    instance_id: str
    started_s: float
    stopped_s: float
    boot_s: float = 0.0

    def __post_init__(self) -> None:
        if self.stopped_s < self.started_s:
            raise ValueError(f"{self.instance_id}: a run cannot stop before it starts")
        if self.boot_s < 0:
            raise ValueError(f"{self.instance_id}: boot_s cannot be negative")

    @property
    def seconds(self) -> float:
        return self.stopped_s - self.started_s


def billed_seconds(run: Run) -> float:
    """Seconds billed for one run: every second it ran, and at least MIN_BILLED_S."""
    return max(MIN_BILLED_S, run.seconds)


def dollars(runs: Iterable[Run], hourly_usd: float) -> float:
    """What the runs cost at an hourly price (on-demand or spot)."""
    return sum(billed_seconds(r) for r in runs) * hourly_usd / 3600.0


def clip(run: Run, start_s: float, end_s: float) -> Run | None:
    """The part of a run inside [start_s, end_s); None when it does not overlap."""
    if not (run.started_s < end_s and (run.stopped_s > start_s or run.started_s >= start_s)):
        return None
    lo, hi = max(run.started_s, start_s), min(run.stopped_s, end_s)
    return Run(run.instance_id, lo, hi, max(0.0, min(hi, run.started_s + run.boot_s) - lo))


@dataclass(frozen=True)
class CostReport:
    """Billed GPU time over a period, where it went, and what it cost."""

    period_s: float
    starts: int
    billed_s: float
    busy_s: float
    boot_s: float
    idle_s: float
    dollars: float
    jobs: int
    interruptions: int = 0  # runs EC2 interrupted (spot), counted at their interruption's time

    @property
    def gpu_hours(self) -> float:
        return self.billed_s / 3600.0

    def share(self, seconds: float) -> float:
        return seconds / self.billed_s if self.billed_s else 0.0

    @property
    def busy_share(self) -> float:
        return self.share(self.busy_s)

    @property
    def boot_share(self) -> float:
        return self.share(self.boot_s)

    @property
    def idle_share(self) -> float:
        return self.share(self.idle_s)

    @property
    def cost_per_job(self) -> float | None:
        return self.dollars / self.jobs if self.jobs else None

    def __str__(self) -> str:
        per_job = "-" if self.cost_per_job is None else f"${self.cost_per_job:.4f}"
        return (f"{self.gpu_hours:.2f} GPU h billed, ${self.dollars:.2f}, {self.starts} start(s); "
                f"busy {self.busy_share:.0%} idle {self.idle_share:.0%} boot {self.boot_share:.0%}; "
                f"{self.jobs} job(s), {per_job} per job")


def report(runs: Sequence[Run], job_gpu_s: Sequence[float], hourly_usd: float,
           period: tuple[float, float] | None = None) -> CostReport:
    """Cost report of the runs (clipped to `period`, [start, end) seconds, when given) and the jobs' GPU seconds.

    A run is billed its seconds inside the period, plus, when it starts inside it, what the minimum
    adds to a run shorter than MIN_BILLED_S; that top-up, like any billed second that was neither
    boot nor a job, counts as idle.
    """
    if period is None:
        start = min((r.started_s for r in runs), default=0.0)
        end = max((r.stopped_s for r in runs), default=start)
    else:
        start, end = period
        if end < start:
            raise ValueError("a period cannot end before it starts")
    billed = boot = 0.0
    starts = 0
    for run in runs:
        part = run if period is None else clip(run, start, end)
        if part is None:
            continue
        billed += part.seconds
        boot += part.boot_s
        if period is None or start <= run.started_s < end:
            starts += 1
            billed += billed_seconds(run) - run.seconds  # the minimum's top-up goes with the start
    busy = float(sum(job_gpu_s))
    return CostReport(
        period_s=end - start,
        starts=starts,
        billed_s=billed,
        busy_s=busy,
        boot_s=boot,
        idle_s=max(0.0, billed - busy - boot),
        dollars=billed * hourly_usd / 3600.0,
        jobs=len(job_gpu_s),
    )
