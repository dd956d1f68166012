"""Chargeback: each owner's part of the GPU cost of a period, and what an owner spent this month."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable


@dataclass(frozen=True)
class OwnerCost:
    """One owner's jobs of a period and what they cost; `owner` None for jobs that belong to nobody (submitted from
    Python without GPUORCH_SUBMIT_OWNER)."""

    owner: str | None
    jobs: int
    busy_s: float
    dollars: float

    def as_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "jobs": self.jobs, "gpu_seconds": round(self.busy_s, 1),
                "dollars": round(self.dollars, 4)}


def owner_costs(dollars: float, work: Iterable[tuple[str | None, float | None]]) -> list[OwnerCost]:
    """`dollars` of a period split by owner, dearest first; `work` is each finished job's owner and GPU seconds
    (None: it never ran on the GPU).

    Each owner pays for its jobs' GPU seconds and, in the same proportion, for the boot and idle time around
    them: the GPU was started and kept warm for the work of all, so each carries the share its work took. Jobs
    that never ran on the GPU cost nothing. With no GPU work at all, nobody is charged (the cost stays the
    deployment's).
    """
    busy: dict[str | None, float] = defaultdict(float)
    count: dict[str | None, int] = defaultdict(int)
    for owner, gpu in work:
        if gpu is None:
            continue
        busy[owner] += gpu
        count[owner] += 1
    total = sum(busy.values())
    if not total:
        return []
    costs = [OwnerCost(owner, count[owner], seconds, dollars * seconds / total)
             for owner, seconds in busy.items()]
    return sorted(costs, key=lambda cost: (-cost.dollars, cost.owner or ""))


def seconds_to_next_month(now: datetime) -> int:
    """Seconds until the next UTC month begins, when a monthly cap resets."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    return max(1, int((following - now).total_seconds()) + 1)
