"""Policies that learn from the deployment's own history: the idle time, pre-warming and scale-out of each check.

The same code runs in the simulator (over the jobs of a trace before "now") and in the live lifecycle (over the
job table's recent jobs): `plan(history, now, base, economics)` returns the Policy `decide` applies at that moment.

- Idle time, by hour of the week: ski rental with the history as its prediction. Keeping an idle GPU through a
  gap costs the gap; stopping it costs the time kept plus the billed seconds of the next cold start. The idle time
  chosen is the one that would have cost least over the gaps that followed jobs in the same hour of the week (or,
  with too few of those, the same hour of any day, then any hour); with no history at all it is the break-even
  (the cold start's billed seconds), which never costs more than twice the best choice in hindsight.
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

from lifecycle.model import Policy

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
    """What a plan weighs: the instance's price, and the cold start it would pay and make jobs wait."""

    hourly_usd: float
    cold_start_billed_s: float
    cold_start_s: float
    mean_job_s: float = 25.0

    @property
    def break_even_s(self) -> float:
        """Keeping a GPU idle this long costs what a stop and a restart cost: the deterministic ski rental."""
        return self.cold_start_billed_s


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


def idle_cost(gap_s: float, idle_s: float, restart_s: float) -> float:
    """GPU seconds paid for one gap: kept warm through it, or kept `idle_s` and then restarted."""
    return gap_s if gap_s <= idle_s else idle_s + restart_s


def choose_idle(lengths: Sequence[float], economics: Economics) -> float:
    """The longest idle time whose cost over these gaps is within COST_TOLERANCE of the cheapest's."""
    choices = sorted({*IDLE_CHOICES_S, economics.break_even_s})
    restart = economics.cold_start_billed_s
    costs = {t: sum(idle_cost(g, t, restart) for g in lengths) for t in choices}
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
    return economics.break_even_s, "break-even (too little history)"


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


def plan(history: History, now_s: float, base: Policy, economics: Economics) -> tuple[Policy, str]:
    """The policy of this moment, learned from `history` (jobs before `now_s`), and why, for the check's log."""
    idle_s, idle_from = learned_idle_s(history, now_s, economics)
    share = prewarm_share(history, now_s, economics.cold_start_s)
    warm = share >= PREWARM_SHARE
    per_instance = backlog_per_instance(economics)
    learned = dataclasses.replace(
        base,
        idle_stop_s=idle_s,
        min_instances=max(base.min_instances, 1 if warm else 0),
        backlog_per_instance=min(base.backlog_per_instance, per_instance),
    )
    why = (f"idle {idle_s:.0f} s ({idle_from}); pre-warm {'on' if warm else 'off'} ({share:.0%} of past periods "
           f"had a job in the next {economics.cold_start_s:.0f} s); another GPU per {per_instance} jobs waiting")
    return learned, why
