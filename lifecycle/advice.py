"""Advice from the deployment's own history: what a period's jobs cost, beside what they would have cost otherwise.

The period's finished jobs become a trace (their submission times and GPU seconds) that the simulator replays under
the replaced rule, each fixed idle time (the best of them is the best in hindsight), the learning policy and
per-second serverless, on the deployment the cost model describes, at the price the period's runs paid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from gpuorch.errors import ConfigurationError
from gpuorch.jobs.store import Job, JobStore
from gpuorch.settings import Settings
from gpuorch.workflows import load_workflows
from lifecycle.cost_model import ColdStart, Offer, cold_start_of, on_demand
from lifecycle.learning import Economics
from lifecycle.model import Policy
from lifecycle.live.costs import Period, job_times, period_inputs, period_report
from lifecycle.live.runs import RunLog, RunRecord
from lifecycle.simulation.policies import DEFAULT_POLICY
from lifecycle.simulation.replaced import ReplacedRule
from lifecycle.simulation.scenario import SimulationParams, SimulationResult
from lifecycle.simulation.serverless import Serverless, simulate_serverless
from lifecycle.simulation.simulate import Learned, simulate
from lifecycle.simulation.workload import Job as TraceJob

# The idle times the hindsight search tries, in minutes.
FIXED_MINUTES = (1, 2, 3, 5, 10, 15, 30, 60)


def trace_of(jobs: Sequence[Job], start: datetime) -> list[TraceJob]:
    """The period's jobs that ran on the GPU as a trace: seconds from `start` to each submission, GPU seconds."""
    trace = []
    for job in jobs:
        times = job_times(job)
        if times.gpu_s:
            trace.append(TraceJob(max(0.0, times.created_s - start.timestamp()), times.gpu_s))
    return sorted(trace)


def paid_offer(records: Sequence[RunRecord]) -> Offer:
    """The price the period's runs paid (the longest-running one's), else on-demand's."""
    if not records:
        return on_demand()
    longest = max(records, key=lambda r: ((r.stopped_at or r.started_at) - r.started_at, r.started_at))
    return Offer(longest.instance_type, longest.market, longest.hourly_usd)


@dataclass(frozen=True)
class Deployment:
    """What the period's jobs are replayed on: the deployment's cold start, its pool's bounds (a fixed idle time
    replaces its own), and what its learned policy weighs a job's wait at."""

    cold_start: ColdStart = ColdStart()
    base: Policy = DEFAULT_POLICY
    wait_usd_per_s: float = 0.0

    @classmethod
    def of(cls, settings: Settings) -> "Deployment":
        """The deployment these settings describe: its workflows' model files from its store, GPUORCH_MIN_INSTANCES
        and GPUORCH_MAX_INSTANCES, GPUORCH_WAIT_VALUE_USD_PER_HOUR."""
        try:
            files = [(model.name, model.bytes) for workflow in load_workflows(settings.workflows_dir)
                     for model in workflow.models]
        except ConfigurationError:  # the worker's own check says why; the cost model's figure stands in
            files = []
        base = dataclasses.replace(DEFAULT_POLICY, min_instances=settings.min_instances,
                                   max_instances=max(1, settings.max_instances, settings.min_instances))
        return cls(cold_start_of(files, settings.models_store), base, settings.wait_value_usd_per_hour / 3600.0)


def alternatives(trace: Sequence[TraceJob], offer: Offer, deployment: Deployment,
                 serverless: Serverless) -> list[SimulationResult]:
    """The trace under the replaced rule, every fixed idle time, the learning policy and serverless."""
    cold_start, base = deployment.cold_start, deployment.base
    params = SimulationParams.deployment(cold_start, offer)
    economics = Economics(offer.hourly_usd, cold_start.billed_s, cold_start.total_s,
                          wait_usd_per_s=deployment.wait_usd_per_s)
    results = [simulate(trace, ReplacedRule(), params=params)]
    results += [simulate(trace, dataclasses.replace(base, idle_stop_s=m * 60.0), name=f"idle {m} min",
                         params=params) for m in FIXED_MINUTES]
    results.append(simulate(trace, Learned(economics, base=base), params=params))
    results.append(simulate_serverless(trace, serverless))
    return results


def compare_period(run_log: RunLog, jobs_store: JobStore, period: Period, *, now: datetime,
                   deployment: Deployment = Deployment(), serverless: Serverless = Serverless()) -> dict[str, Any]:
    """What the period's jobs cost and would have cost otherwise, and the idle time the history recommends."""
    records, jobs = period_inputs(run_log, jobs_store, period, now=now)
    actual = period_report(records, jobs, period, now)
    trace = trace_of(jobs, period.start)
    offer = paid_offer(records)
    rows = alternatives(trace, offer, deployment, serverless) if trace else []
    fixed = [r for r in rows if r.policy.startswith("idle ")]
    best = min(fixed, key=lambda r: (r.dollars, r.wait_p95_s), default=None)
    learned = next((r for r in rows if r.policy == "learned"), None)
    return {
        "jobs": len(trace),
        "dollars": round(actual.dollars, 4),
        "priced_as": offer.name,
        "alternatives": [{
            "policy": r.policy,
            "dollars": round(r.dollars, 4),
            "x_actual": round(r.dollars / actual.dollars, 3) if actual.dollars else None,
            "p95_wait_s": round(r.wait_p95_s, 1),
        } for r in rows],
        "best_fixed_idle_s": None if best is None else _minutes(best.policy) * 60,
        "recommendation": recommend(actual.dollars, best, learned, rows[-1] if rows else None),
    }


def _minutes(policy: str) -> int:
    return int(policy.split()[1])


def recommend(actual_usd: float, best: SimulationResult | None, learned: SimulationResult | None,
              serverless: SimulationResult | None) -> str:
    """One sentence a person can act on."""
    if best is None or learned is None or serverless is None:
        return "No job ran on the GPU in this period: nothing to compare."
    cheapest = min((best, learned), key=lambda r: r.dollars)
    setting = ("GPUORCH_LIFECYCLE_POLICY=learned" if cheapest is learned
               else f"GPUORCH_IDLE_STOP_SECONDS={_minutes(best.policy) * 60}")
    advice = (f"{setting} would have cost ${cheapest.dollars:.2f} against ${actual_usd:.2f} paid, "
              f"p95 wait {cheapest.wait_p95_s:.0f} s")
    if serverless.dollars < cheapest.dollars:
        advice += (f"; per-second serverless would have been cheaper still (${serverless.dollars:.2f}): this "
                   "traffic is too sparse for a GPU of your own")
    return advice + "."


def format_comparison(comparison: dict[str, Any]) -> str:
    """The comparison for a person: one line per alternative, then the recommendation."""
    lines = [f"\n{comparison['jobs']} job(s) replayed as {comparison['priced_as']}, against ${comparison['dollars']:.2f} "
             "paid:"]
    width = max((len(row["policy"]) for row in comparison["alternatives"]), default=0)
    for row in comparison["alternatives"]:
        ratio = "" if row["x_actual"] is None else f"  {row['x_actual']:.2f}x"
        lines.append(f"  {row['policy']:<{width}}  ${row['dollars']:.2f}{ratio}  p95 wait {row['p95_wait_s']:.0f} s")
    lines.append(comparison["recommendation"])
    return "\n".join(lines)
