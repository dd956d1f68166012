"""What a simulation runs on (the simulated hardware and loop) and what it reports, with the table that prints it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from lifecycle.billing import CostReport, Run
from lifecycle.cost_model import ColdStart, Offer
from lifecycle.model import G6E_2XLARGE_HOURLY_USD


@dataclass(frozen=True)
class SimulationParams:
    """The simulated hardware and lifecycle loop; the defaults are a stopped g6e.2xlarge and its model.

    `check_on_submit`: a submission also asks the control worker for a decision (a control-queue
    task sent beside the job), so a stopped GPU starts within a second, not at the next beat.
    """

    boot_s: float = 90.0
    warmup_s: float = 45.0
    pending_s: float = 15.0
    stop_s: float = 30.0
    check_interval_s: float = 30.0
    check_on_submit: bool = True
    visibility_timeout_s: float = 300.0
    max_receive_count: int = 3
    hourly_price: float = G6E_2XLARGE_HOURLY_USD

    def __post_init__(self) -> None:
        if not 0 <= self.pending_s <= self.boot_s:
            raise ValueError("pending_s must be between 0 and boot_s")
        if min(self.warmup_s, self.stop_s) < 0 or self.check_interval_s <= 0 or self.visibility_timeout_s <= 0:
            raise ValueError("times must be positive (warmup_s and stop_s may be 0)")
        if self.max_receive_count < 1:
            raise ValueError("max_receive_count must be at least 1")

    @property
    def cold_start_s(self) -> float:
        """Seconds from a start request until the instance runs its first job."""
        return self.boot_s + self.warmup_s

    @classmethod
    def deployment(cls, cold_start: ColdStart, offer: Offer, **overrides) -> "SimulationParams":
        """The simulated hardware of a deployment, from the cost model: the literal defaults above are the round
        figures the default policy was first tuned on (lifecycle.model.DEFAULT_IDLE_STOP_S)."""
        worker_up = cold_start.ec2_pending_s + cold_start.os_boot_s + cold_start.worker_start_s
        return cls(pending_s=cold_start.ec2_pending_s, boot_s=worker_up, warmup_s=cold_start.warmup_s,
                   hourly_price=offer.hourly_usd, **overrides)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100.0 * len(ordered)) - 1)]


@dataclass(frozen=True)
class SimulationResult:
    """What a policy cost on a trace and what the jobs waited (arrival to the start of their GPU work)."""

    policy: str
    jobs: int
    completed: int
    failed: int
    unserved: int
    interrupted: int
    starts: int
    cost: CostReport
    waits_s: tuple[float, ...] = ()
    runs: tuple[Run, ...] = ()
    expired: int = 0  # not started by their deadline: never run, not waited for

    @property
    def dollars(self) -> float:
        return self.cost.dollars

    @property
    def gpu_hours(self) -> float:
        return self.cost.gpu_hours

    @property
    def utilization(self) -> float:
        return self.cost.busy_share

    @property
    def wait_p50_s(self) -> float:
        return percentile(self.waits_s, 50)

    @property
    def wait_p95_s(self) -> float:
        return percentile(self.waits_s, 95)

    @property
    def wait_max_s(self) -> float:
        return max(self.waits_s, default=0.0)




TABLE_HEADER = ("policy", "usd", "x opt", "gpu h", "util", "starts", "p50 s", "p95 s", "max s", "lost")
EXPIRED_HEADER = "expired"


def table_row(result: SimulationResult, optimum: SimulationResult | None = None) -> tuple[str, ...]:
    ratio = f"{result.dollars / optimum.dollars:.2f}" if optimum and optimum.dollars else "-"
    return (result.policy, f"{result.dollars:.2f}", ratio, f"{result.gpu_hours:.2f}",
            f"{result.utilization:.0%}", str(result.starts), f"{result.wait_p50_s:.0f}",
            f"{result.wait_p95_s:.0f}", f"{result.wait_max_s:.0f}",
            str(result.failed + result.unserved))


def format_table(results: Sequence[SimulationResult], optimum: SimulationResult | None = None) -> str:
    """Aligned text table, one row per result; `x opt` is its cost over the optimum's, `lost` its
    dead-lettered and never-served jobs, and (when any job had a deadline it missed) `expired` those."""
    header = TABLE_HEADER
    rows = [table_row(r, optimum) for r in results]
    if any(r.expired for r in results):
        header = (*TABLE_HEADER, EXPIRED_HEADER)
        rows = [(*row, str(r.expired)) for row, r in zip(rows, results)]
    rows = [header] + rows
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
        for row in rows)
