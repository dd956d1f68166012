"""The spot market a simulation runs in: a spot instance beside each on-demand one, priced by the day."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta

from lifecycle.billing import Run, billed_seconds
from lifecycle.cost_model import Offer, SpotPrices, spot
from lifecycle.prices import G6E_2XLARGE

DAY_S = 86400.0
# EC2's spot interruption notice comes this long before it stops the instance.
NOTICE_S = 120.0


@dataclass(frozen=True)
class SpotMarket:
    """The spot prices and interruption rates a trace meets when its second 0 falls on `first_day`.

    The pool gets a spot instance beside each on-demand one (as docs/DEPLOYMENT.md sets one up); the policy's
    market choice (lifecycle.market) decides which a start takes. `seed` draws the interruptions, at the history's
    rate for the day or at `interruptions_per_hour` when given (a what-if).
    """

    prices: SpotPrices
    first_day: date
    instance_type: str = G6E_2XLARGE
    seed: int = 0
    interruptions_per_hour: float | None = None

    def day(self, t_s: float) -> date:
        return self.first_day + timedelta(days=int(t_s // DAY_S))

    def offer(self, t_s: float) -> Offer:
        """The spot offer at trace second `t_s`: the day's price and its interruptions per hour."""
        offer = spot(self.prices, self.day(t_s), self.instance_type)
        if self.interruptions_per_hour is None:
            return offer
        return dataclasses.replace(offer, interruptions_per_hour=self.interruptions_per_hour)


def first_days(prices: SpotPrices, span_days: int, count: int) -> list[date]:
    """`count` first days spread evenly over the price history, each leaving `span_days` of it after: a trace
    replayed from each meets the market as it was across the history, not at one chosen moment."""
    if not prices.dates:
        raise ValueError("an empty spot price history")
    first, last = prices.dates[0], prices.dates[-1] - timedelta(days=span_days)
    if count < 1 or last < first:
        return [first]
    if count == 1:
        return [last]
    step = (last - first) / (count - 1)
    return [first + step * n for n in range(count)]


def cheapest_usd(runs: list[Run] | tuple[Run, ...], market: SpotMarket, on_demand_usd: float, max_share: float) -> float:
    """What runs cost in the market a start takes on its day (spot while under `max_share` of on-demand), with no
    interruption: the hindsight optimum's price in a spot market."""
    total = 0.0
    for run in runs:
        offered = market.offer(run.started_s).hourly_usd
        hourly = offered if offered < max_share * on_demand_usd else on_demand_usd
        total += billed_seconds(run) * hourly / 3600.0
    return total
