"""Policies that learn from the deployment's own history: the idle time, pre-warming and scale-out of each check.

The same code runs in the simulator (over the jobs of a trace before "now") and in the live lifecycle (over the
job table's recent jobs): `plan(history, now, base, economics)` returns the Policy `decide` applies at that moment.

- Idle time, by hour of the week: ski rental with the history as its prediction. Keeping an idle GPU through a
  gap costs the gap at the current price; stopping it costs the time kept plus the next cold start: its billed
  seconds, and the seconds the job that meets it waits, valued at `wait_usd_per_s`. The idle time chosen is the
  one that would have cost least over the gaps that followed jobs in the same hour of the week (or, with too few
  of those, the same hour of any day, then any hour); with no history at all it is the break-even, which never
  costs more than twice the best choice in hindsight. With waits valued, a cheap spot price makes idling cheap
  against them, so the GPU is kept longer.
- Pre-warm: when most past weeks (or days, with less than two weeks of history) had a job in the next cold start
  of this moment, one GPU is kept warm, so that the activity the history predicts finds it ready.
- Scale-out: per-second billing makes N GPUs for T/N about the price of one for T, plus N-1 boots; another GPU
  starts when the visible backlog holds more work than one cold start takes.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Sequence

from lifecycle.market import on_demand_price, start_order
from lifecycle.model import Policy, Snapshot

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
WEEK_S = 7 * DAY_S
# How far back a plan looks: long enough for four of each hour of the week, short enough to follow a change.
LOOKBACK_S = 4 * WEEK_S
# Fewer gaps than this in a slot and the plan widens it (the same hour of any day, then any hour).
MIN_GAPS = 8
# The idle times a plan chooses among, besides the break-even.
IDLE_CHOICES_S = (0.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
# Pre-warm when at least this share of past weeks (or days) had a job in the coming cold start, over at least
# PREWARM_LOOKS of them: with fewer, a share is mostly chance.
PREWARM_SHARE = 0.7
PREWARM_LOOKS = 4
# An idle time within this much of the cheapest in hindsight counts as cheap: the longest of those is chosen,
# since each stop it saves is a cold start some job would wait for.
COST_TOLERANCE = 0.05


@dataclass(frozen=True)
class Economics:
    """What a plan weighs: the GPU's current price, the cold start it would pay and make a job wait, and what a
    second of that wait is worth to the deployment (`wait_usd_per_s`: 0 minimises the GPU bill alone; the
    on-demand price of a GPU second, $0.00062, trades about one GPU second for each second a job waits)."""

    hourly_usd: float
    cold_start_billed_s: float
    cold_start_s: float
    mean_job_s: float = 25.0
    wait_usd_per_s: float = 0.0

    def __post_init__(self) -> None:
        if self.hourly_usd < 0 or self.wait_usd_per_s < 0:
            raise ValueError("a price and the value of a wait cannot be negative")

    @property
    def usd_per_s(self) -> float:
        return self.hourly_usd / HOUR_S

    @property
    def restart_usd(self) -> float:
        """What a stop costs at the next job: the cold start's billed seconds and its wait."""
        return self.cold_start_billed_s * self.usd_per_s + self.cold_start_s * self.wait_usd_per_s

    @property
    def break_even_s(self) -> float:
        """Keeping a GPU idle this long costs what a stop and a restart cost: the deterministic ski rental."""
        return self.restart_usd / self.usd_per_s if self.usd_per_s else IDLE_CHOICES_S[-1]

    def at_price(self, hourly_usd: float) -> "Economics":
        """The same deployment at another current price (the market a start takes now)."""
        return dataclasses.replace(self, hourly_usd=hourly_usd)


@dataclass(frozen=True)
class History:
    """Past job submissions (seconds on the caller's clock, sorted) and their GPU seconds, up to `end` of them."""

    arrivals: Sequence[float]
    gpu_s: Sequence[float]
    end: int | None = None

    def __post_init__(self) -> None:
        if len(self.arrivals) != len(self.gpu_s):
            raise ValueError("every arrival needs its GPU seconds")

    @property
    def count(self) -> int:
        return len(self.arrivals) if self.end is None else self.end

    def since(self, start_s: float) -> range:
        return range(bisect_left(self.arrivals, start_s, 0, self.count), self.count)

    def any_between(self, start_s: float, end_s: float) -> bool:
        i = bisect_left(self.arrivals, start_s, 0, self.count)
        return i < self.count and self.arrivals[i] < end_s


# Plans read time on a clock whose second 0 is a Monday, 00:00 UTC (the simulator's is); the Unix epoch was a
# Thursday, so epoch seconds become plan seconds by subtracting the four days to the next Monday.
UNIX_TO_MONDAY_S = 4 * DAY_S


def hour_of_week(t_s: float) -> int:
    """0 (Monday 00:00-01:00 UTC) to 167 for a time on the plans' clock."""
    return int((t_s % WEEK_S) // HOUR_S)


def gaps(history: History, now_s: float) -> list[tuple[float, float]]:
    """(start, length) of each idle gap that followed a job in the lookback: from its work's end to the next
    arrival, when that came later (the last job's gap is still open: it counts up to now)."""
    found = []
    indexes = history.since(now_s - LOOKBACK_S)
    for i in indexes:
        free = history.arrivals[i] + history.gpu_s[i]
        following = history.arrivals[i + 1] if i + 1 < history.count else now_s
        if following > free:
            found.append((free, following - free))
    return found


def idle_cost(gap_s: float, idle_s: float, economics: Economics) -> float:
    """Dollars one gap costs: kept warm through it, or kept `idle_s` and then restarted (billed and waited for)."""
    if gap_s <= idle_s:
        return gap_s * economics.usd_per_s
    return idle_s * economics.usd_per_s + economics.restart_usd


def choose_idle(lengths: Sequence[float], economics: Economics) -> float:
    """The longest idle time whose cost over these gaps is within COST_TOLERANCE of the cheapest's."""
    choices = sorted({*IDLE_CHOICES_S, min(economics.break_even_s, IDLE_CHOICES_S[-1])})
    costs = {t: sum(idle_cost(g, t, economics) for g in lengths) for t in choices}
    cheapest = min(costs.values())
    return max(t for t, cost in costs.items() if cost <= cheapest * (1 + COST_TOLERANCE))


def learned_idle_s(history: History, now_s: float, economics: Economics) -> tuple[float, str]:
    """(idle time, where it came from) for a gap starting now."""
    found = gaps(history, now_s)
    slot = hour_of_week(now_s)
    for label, same in (
        ("this hour of the week", lambda start: hour_of_week(start) == slot),
        ("this hour of the day", lambda start: hour_of_week(start) % 24 == slot % 24),
        ("every hour", lambda start: True),
    ):
        lengths = [length for start, length in found if same(start)]
        if len(lengths) >= MIN_GAPS:
            return choose_idle(lengths, economics), f"{len(lengths)} gaps of {label}"
    return min(economics.break_even_s, IDLE_CHOICES_S[-1]), "break-even (too little history)"


def prewarm_share(history: History, now_s: float, lead_s: float) -> float:
    """The share of past weeks (of past days, with less than two weeks of history) that had a job within
    `lead_s` after this moment of the week (of the day)."""
    if not history.count:
        return 0.0
    known_s = now_s - history.arrivals[0]
    period = WEEK_S if known_s >= PREWARM_LOOKS * WEEK_S else DAY_S
    looks = min(int(known_s // period), int(LOOKBACK_S // period))
    if looks < PREWARM_LOOKS:
        return 0.0
    hits = sum(history.any_between(now_s - k * period, now_s - k * period + lead_s) for k in range(1, looks + 1))
    return hits / looks


def backlog_per_instance(economics: Economics) -> int:
    """Visible jobs one GPU may face before another starts: as many as one cold start's worth of work."""
    return max(1, math.ceil(economics.cold_start_s / max(1.0, economics.mean_job_s)))


def start_price(snapshot: Snapshot, policy: Policy) -> float:
    """The hourly price of the market the next start takes (lifecycle.market's order over every instance not
    running, or over all of them): what an idle GPU is weighed at against a restart."""
    instances = [i for i in snapshot.instances if i.state != "running"] or list(snapshot.instances)
    ordered = start_order(instances, snapshot, policy)
    if not ordered:
        return snapshot.hourly_price_usd
    first = ordered[0].instance
    if first.market == "spot" and ordered[0].passed_over is None:
        return snapshot.spot_prices.get(first.instance_id, on_demand_price(first, snapshot))
    return on_demand_price(first, snapshot)


def plan(history: History, now_s: float, base: Policy, economics: Economics,
         idle: tuple[float, str] | None = None) -> tuple[Policy, str]:
    """The policy of this moment, learned from `history` (jobs before `now_s`) at `economics`' current price, and
    why, for the check's log. `idle`: the idle time and its source, when the caller learned it already (the
    simulator learns it once an hour)."""
    idle_s, idle_from = idle or learned_idle_s(history, now_s, economics)
    share = prewarm_share(history, now_s, economics.cold_start_s)
    warm = share >= PREWARM_SHARE
    per_instance = backlog_per_instance(economics)
    learned = dataclasses.replace(
        base,
        idle_stop_s=idle_s,
        min_instances=max(base.min_instances, 1 if warm else 0),
        backlog_per_instance=min(base.backlog_per_instance, per_instance),
    )
    why = (f"idle {idle_s:.0f} s ({idle_from}, GPU at ${economics.hourly_usd:.2f}/h); pre-warm {'on' if warm else 'off'} ({share:.0%} of past periods "
           f"had a job in the next {economics.cold_start_s:.0f} s); another GPU per {per_instance} jobs waiting")
    return learned, why
