"""Where a job is and what it will cost: its phase, its place in the queue, when it should start and finish, and a
price before it runs; then how good those estimates were. Pure: the facade gathers the numbers.

A queued job waits for one of four things, in this order of precedence: a GPU that is ready (its worker reports
ready) and the jobs ahead of it (phase `queued`); a GPU that is starting (`gpu_starting`: pending, or running
without a ready worker yet), ready once its measured cold start has passed; a start the lifecycle will make at its
next check (`waiting_for_gpu`, a whole cold start away); or nothing, when the lifecycle refuses to start one (the
budget, a held instance: `waiting_for_gpu` with no eta and the reason).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from gpuorch.clock import timestamp
from lifecycle.billing import MIN_BILLED_S
from lifecycle.cost_model import ColdStart

# GPU seconds of a job of a workflow no finished job has told of yet: a camera-angle move's 20-40 s on an L40S
# (lifecycle/simulation/workload.py), the longer of the built-in workflows, so a first price errs high.
DEFAULT_GPU_S = 30.0
# A job's run on the GPU worker beyond ComfyUI's execution (inputs fetched and uploaded, outputs stored), when no
# finished job has told of it yet.
DEFAULT_OVERHEAD_S = 5.0
# A cold start as DEPLOYMENT.md builds the instance, until the lifecycle has measured one.
DEFAULT_COLD_START = ColdStart()

QUEUED, GPU_STARTING, WAITING_FOR_GPU, RUNNING = "queued", "gpu_starting", "waiting_for_gpu", "running"
PHASES = (WAITING_FOR_GPU, GPU_STARTING, QUEUED, RUNNING)


@dataclass(frozen=True)
class WorkflowTimes:
    """What a workflow's jobs take: ComfyUI's execution (`gpu_s`) and the whole run on the worker (`run_s`), the
    medians of `observed` finished jobs (0: the defaults)."""

    gpu_s: float = DEFAULT_GPU_S
    run_s: float = DEFAULT_GPU_S + DEFAULT_OVERHEAD_S
    observed: int = 0


@dataclass(frozen=True)
class GpuView:
    """The GPU as the lifecycle sees it now.

    - ready: instances whose worker reports ready (a fresh heartbeat);
    - starting_in_s: for each instance starting (pending, or running without a ready worker), the seconds until it
      should be ready: the measured cold start less what has passed since it started (never below 0);
    - blocked: why the lifecycle's last check started no GPU, when it refused to (None: it would start one);
    - cold_start_s: a cold start, from the start request until the worker takes jobs (measured, else the model's);
    - billed_boot_s: the part of a cold start EC2 bills (from `running` on);
    - hourly_usd: what the GPU costs an hour;
    - running_jobs: the jobs the workers report running now (None: not known, no worker reports).
    """

    ready: int = 0
    starting_in_s: tuple[float, ...] = ()
    blocked: str | None = None
    cold_start_s: float = DEFAULT_COLD_START.total_s
    billed_boot_s: float = DEFAULT_COLD_START.billed_s
    hourly_usd: float = 2.24
    running_jobs: frozenset[str] | None = None


@dataclass(frozen=True)
class Whereabouts:
    """Where a job not over is: its phase, how many jobs are ahead of it, when it should start and finish (seconds
    from now; None: not known, e.g. no GPU may start), and why, in words."""

    phase: str
    queue_position: int | None
    start_in_s: float | None
    finish_in_s: float | None
    reason: str

    def eta(self, now: datetime) -> dict[str, Any] | None:
        if self.finish_in_s is None:
            return None
        return {"start_in_s": round(self.start_in_s, 1), "finish_in_s": round(self.finish_in_s, 1),
                "start_by": timestamp(now + timedelta(seconds=self.start_in_s)),
                "finish_by": timestamp(now + timedelta(seconds=self.finish_in_s))}


def observed_times(finished: Iterable[tuple[str, float | None, float | None]]) -> dict[str, WorkflowTimes]:
    """Each workflow's times from finished jobs: (workflow, ComfyUI execution seconds, run seconds) each."""
    gpu: dict[str, list[float]] = {}
    run: dict[str, list[float]] = {}
    for workflow, gpu_s, run_s in finished:
        if gpu_s is not None and gpu_s > 0:
            gpu.setdefault(workflow, []).append(gpu_s)
        if run_s is not None and run_s > 0:
            run.setdefault(workflow, []).append(run_s)
    times = {}
    for workflow in set(gpu) | set(run):
        gpu_s = statistics.median(gpu[workflow]) if workflow in gpu else DEFAULT_GPU_S
        run_s = statistics.median(run[workflow]) if workflow in run else gpu_s + DEFAULT_OVERHEAD_S
        times[workflow] = WorkflowTimes(gpu_s, max(run_s, gpu_s), len(run.get(workflow, gpu.get(workflow, ()))))
    return times


def times_of(times: Mapping[str, WorkflowTimes], workflow: str) -> WorkflowTimes:
    return times.get(workflow, WorkflowTimes())


def work_ahead_s(ahead: Sequence[str], running_left_s: Sequence[float], times: Mapping[str, WorkflowTimes]) -> float:
    """Seconds of GPU work before a job: the queued jobs ahead of it (their workflows) and what the running ones
    have left."""
    return sum(times_of(times, workflow).run_s for workflow in ahead) + sum(max(0.0, s) for s in running_left_s)


def whereabouts(status: str, own: WorkflowTimes, *, ahead: int, work_ahead: float, gpu: GpuView,
                running_for_s: float = 0.0) -> Whereabouts | None:
    """Where a queued or running job is (None for one that is over). `ahead` jobs with `work_ahead` seconds of work
    wait before it; instances share the work evenly."""
    if status == "running":
        left = max(0.0, own.run_s - running_for_s)
        return Whereabouts(RUNNING, 0, 0.0, left, "running on the GPU")
    if status != "queued":
        return None
    behind = f"behind {ahead} job(s)" if ahead else "next in line"
    if gpu.ready:
        start = work_ahead / gpu.ready
        return Whereabouts(QUEUED, ahead, start, start + own.run_s,
                           f"queued {behind} on {gpu.ready} ready GPU instance(s)")
    if gpu.starting_in_s:
        start = min(gpu.starting_in_s) + work_ahead / len(gpu.starting_in_s)
        return Whereabouts(GPU_STARTING, ahead, start, start + own.run_s,
                           f"a GPU instance is starting (ready in about {min(gpu.starting_in_s):.0f} s); {behind}")
    if gpu.blocked:
        return Whereabouts(WAITING_FOR_GPU, ahead, None, None, f"no GPU instance may start: {gpu.blocked}")
    start = gpu.cold_start_s + work_ahead
    return Whereabouts(WAITING_FOR_GPU, ahead, start, start + own.run_s,
                       f"waiting for a GPU instance to start (a cold start of about {gpu.cold_start_s:.0f} s); {behind}")


def given_back(job_id: str, running_for_s: float, gpu: GpuView, *, grace_s: float) -> bool:
    """A job whose record says running that no worker has reported running for longer than `grace_s` (a
    heartbeat's staleness): its instance gave it back (a spot interruption) or died, and it waits to be taken again.
    Its status stays running (statuses only move forward); where it is is the queue's front."""
    return gpu.running_jobs is not None and job_id not in gpu.running_jobs and running_for_s > grace_s


def waiting_again(where: Whereabouts) -> Whereabouts:
    """The whereabouts of a given-back job, as a queued one's, saying so."""
    return replace(where, reason=f"taken off its GPU instance (interrupted or gone), waiting to run again: "
                                 f"{where.reason}")


def quote(own: WorkflowTimes, gpu: GpuView) -> dict[str, float]:
    """A job's expected dollars: warm, its GPU seconds at the instance's price; cold, with the start's billed seconds
    (at least EC2's 60 s of a start)."""
    per_s = gpu.hourly_usd / 3600.0
    return {"usd_warm": round(own.gpu_s * per_s, 6),
            "usd_cold": round(max(MIN_BILLED_S, gpu.billed_boot_s + own.gpu_s) * per_s, 6)}


def estimate(own: WorkflowTimes, where: Whereabouts, gpu: GpuView, now: datetime) -> dict[str, Any]:
    """What a job is expected to take and cost, as its record keeps it from its submission."""
    eta = where.eta(now) or {}
    return {"gpu_seconds": round(own.gpu_s, 2), "run_seconds": round(own.run_s, 2), "hourly_usd": gpu.hourly_usd,
            **quote(own, gpu), "phase": where.phase, "queue_position": where.queue_position,
            "start_by": eta.get("start_by"), "finish_by": eta.get("finish_by"),
            "observed_jobs": own.observed}


def actual(estimated: Mapping[str, Any] | None, *, gpu_seconds: float | None, started_at: str | None,
           finished_at: str | None) -> dict[str, Any] | None:
    """What an ended job took and cost beside what was estimated (None without an estimate): its GPU seconds, their
    dollars at the estimate's price, and how far its finish was from the estimated one (seconds, + late)."""
    if not estimated:
        return None
    dollars = None if gpu_seconds is None else round(gpu_seconds * estimated["hourly_usd"] / 3600.0, 6)
    finish_error = None
    if finished_at and estimated.get("finish_by"):
        finish_error = round((datetime.fromisoformat(finished_at) -
                              datetime.fromisoformat(estimated["finish_by"])).total_seconds(), 1)
    return {"gpu_seconds": gpu_seconds, "usd": dollars, "started_at": started_at, "finished_at": finished_at,
            "finish_error_s": finish_error}


def accuracy(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, Any]:
    """How good the estimates of ended jobs were: (estimate, actual) pairs of jobs that ran on the GPU.

    gpu_seconds_error_pct: the median of |actual - estimated| / actual GPU seconds, in percent (the same for the
    warm dollars, which are proportional); finish_error_s: the median and 90th percentile of |finish - estimated
    finish|; finished_by_estimate: the share that finished no later than estimated.
    """
    gpu_errors, finish_errors, on_time = [], [], []
    for estimated, done in pairs:
        if done.get("gpu_seconds"):
            gpu_errors.append(abs(done["gpu_seconds"] - estimated["gpu_seconds"]) / done["gpu_seconds"] * 100)
        if done.get("finish_error_s") is not None:
            finish_errors.append(abs(done["finish_error_s"]))
            on_time.append(done["finish_error_s"] <= 0)
    return {
        "jobs": len(gpu_errors),
        "gpu_seconds_error_pct": round(statistics.median(gpu_errors), 1) if gpu_errors else None,
        "finish_error_s": None if not finish_errors else {
            "median": round(statistics.median(finish_errors), 1), "p90": round(_percentile(finish_errors, 90), 1)},
        "finished_by_estimate": round(sum(on_time) / len(on_time), 3) if on_time else None,
    }


def _percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]
