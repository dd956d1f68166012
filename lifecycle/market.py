"""Which stopped instance a start takes, by market: spot while it is cheap enough and EC2 has not lately refused or
interrupted it, else on-demand; a spot instance passed over says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from lifecycle.model import ON_DEMAND, SPOT, Instance, Policy, Snapshot


@dataclass(frozen=True)
class PassedOver:
    """Why a stopped spot instance is not preferred now: `reason` is one of FALLBACK_REASONS, `why` says more."""

    reason: str
    why: str


@dataclass(frozen=True)
class Candidate:
    """A stopped instance in the order starts take them; `passed_over` is set for a spot instance not preferred now,
    `note` says what its market costs."""

    instance: Instance
    passed_over: PassedOver | None = None
    note: str = ""


def on_demand_price(instance: Instance, snapshot: Snapshot) -> float:
    return snapshot.on_demand_usd.get(instance.instance_type, snapshot.hourly_price_usd)


def spot_note(instance: Instance, snapshot: Snapshot) -> tuple[float | None, str]:
    """(its spot price as a share of on-demand, a note saying both prices); (None, ...) when the price is unknown."""
    on_demand = on_demand_price(instance, snapshot)
    price = snapshot.spot_prices.get(instance.instance_id)
    if price is None:
        return None, f"spot price unknown, on-demand ${on_demand:.2f}/h"
    share = price / on_demand
    return share, f"spot ${price:.4f}/h, {share:.0%} of on-demand ${on_demand:.2f}/h"


def passed_over(instance: Instance, snapshot: Snapshot, policy: Policy) -> PassedOver | None:
    """None when this stopped spot instance is preferred to on-demand now; else why not.

    Not within `spot_hold_s` of EC2 refusing or interrupting it (spot capacity lost rarely comes back within
    minutes), and only while its current price is known and under `spot_max_share` of on-demand.
    """
    setback = snapshot.spot_setbacks.get(instance.instance_id)
    if setback is not None:
        age = (snapshot.now - setback.at).total_seconds()
        if age < policy.spot_hold_s:
            # An interruption is remembered by the time its notice gives, a little ahead.
            when = f"{age:.0f} s ago" if age >= 0 else f"in {-age:.0f} s"
            return PassedOver(f"spot_{setback.kind}",
                              f"spot {setback.kind} {when} ({setback.reason or 'no reason given'}), "
                              f"held off for {policy.spot_hold_s:.0f} s")
    share, note = spot_note(instance, snapshot)
    if share is None:
        return PassedOver("spot_price", note)
    if share >= policy.spot_max_share:
        return PassedOver("spot_price", f"{note}, not under {policy.spot_max_share:.0%}")
    return None


def start_order(stopped: Iterable[Instance], snapshot: Snapshot, policy: Policy) -> list[Candidate]:
    """The stopped instances in the order starts take them: preferred spot ones, then on-demand ones, then spot ones
    passed over (still better than no start at all); the cheapest per hour first within each (a pool may hold
    instances of several types, each of which serves), then by id."""
    ranked = []
    for instance in stopped:
        if instance.market == SPOT:
            _share, note = spot_note(instance, snapshot)
            why = passed_over(instance, snapshot, policy)
            rank = (2, 0.0) if why is not None else (0, start_price(instance, snapshot))
            ranked.append((rank, instance.instance_id, Candidate(instance, why, note)))
        else:
            price = start_price(instance, snapshot)
            note = f"on-demand ${price:.2f}/h"
            ranked.append(((1, price), instance.instance_id, Candidate(instance, None, note)))
    return [candidate for _rank, _id, candidate in sorted(ranked, key=lambda r: (r[0], r[1]))]


def is_on_demand(candidate: Candidate) -> bool:
    return candidate.instance.market == ON_DEMAND


def start_price(instance: Instance, snapshot: Snapshot) -> float:
    """What a start of this instance pays an hour: a spot instance its current spot price, when known; else its
    type's on-demand price."""
    if instance.market == SPOT and instance.instance_id in snapshot.spot_prices:
        return snapshot.spot_prices[instance.instance_id]
    return on_demand_price(instance, snapshot)


def next_start(snapshot: Snapshot, policy: Policy, held: Iterable[str] = ()) -> dict[str, Any] | None:
    """The instance a start would take next (start_order's first of the stopped ones and those stopping, which are
    started once stopped; the `held` ones left out) and what it would pay an hour: what a job's quote prices a GPU
    not yet running at. None when no instance is stopped or stopping."""
    held = set(held)
    order = start_order((i for i in snapshot.instances if i.state in ("stopped", "stopping")
                         and i.instance_id not in held), snapshot, policy)
    if not order:
        return None
    instance = order[0].instance
    return {"instance_id": instance.instance_id, "instance_type": instance.instance_type, "market": instance.market,
            "hourly_usd": start_price(instance, snapshot)}
