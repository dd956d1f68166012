"""The hindsight optimum: what a trace would cost a GPU that knew every arrival in advance."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from lifecycle.billing import Run, report
from lifecycle.simulation.scenario import SimulationParams, SimulationResult
from lifecycle.simulation.workload import Job


def busy_periods(trace: Sequence[Job]) -> tuple[list[tuple[float, float]], list[float]]:
    """The stretches one always-ready instance is busy serving the trace first come first served, and
    each job's wait for it (queueing behind earlier jobs only)."""
    periods: list[tuple[float, float]] = []
    waits: list[float] = []
    free_at = float("-inf")
    for job in sorted(trace):
        start = max(job.arrival_s, free_at)
        waits.append(start - job.arrival_s)
        free_at = start + job.gpu_s
        if periods and start <= periods[-1][1]:
            periods[-1] = (periods[-1][0], free_at)
        else:
            periods.append((start, free_at))
    return periods, waits


def optimum(trace: Sequence[Job], *, params: SimulationParams | None = None,
            **param_overrides: float) -> SimulationResult:
    """The cheapest way to serve `trace` on one instance with no job ever waiting for a boot.

    Knowing every arrival, the instance is ready exactly when each busy period begins (started
    `boot_s + warmup_s` before it) and, at the end of a busy period, is stopped through the gap to the
    next one only when that is cheaper and possible: when the next start's billed boot
    (`boot_s - pending_s + warmup_s`) costs less than keeping the instance running through the gap,
    and the gap leaves time to stop (`stop_s`) and boot again. This is the offline optimum of the
    ski-rental problem each gap poses, so no policy that starts the GPU for waiting work (as every
    compared one does) can cost less without making jobs wait for it: an online policy only dips
    below it by the gaps its cold starts close, that is by deferring work. The jobs' waits are their
    queueing behind one another alone, the least one instance allows.
    """
    params = params or SimulationParams()
    if param_overrides:
        params = dataclasses.replace(params, **param_overrides)
    periods, waits = busy_periods(trace)
    lead_s = params.cold_start_s - params.pending_s  # billed from `running` to the first job
    runs: list[Run] = []
    run_start = None
    for n, (start, end) in enumerate(periods):
        if run_start is None:
            run_start = start - lead_s
        following = periods[n + 1][0] if n + 1 < len(periods) else None
        gap = None if following is None else following - end
        if gap is None or (gap >= params.stop_s + params.cold_start_s and lead_s < gap):
            runs.append(Run("i-gpu0", run_start, end, lead_s))
            run_start = None
    gpu = [job.gpu_s for job in trace]
    return SimulationResult(
        policy="optimum",
        jobs=len(gpu),
        completed=len(gpu),
        failed=0,
        unserved=0,
        interrupted=0,
        starts=len(runs),
        cost=report(runs, gpu, params.hourly_price),
        waits_s=tuple(waits),
        runs=tuple(runs),
    )
