"""The values the GPU lifecycle decision reads and returns: instances, heartbeats, snapshot, policy, decision."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Mapping

from lifecycle.prices import G6E_2XLARGE, G6E_2XLARGE_HOURLY_USD

InstanceState = Literal["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]
ActionKind = Literal["start", "stop", "none", "blocked"]
SetbackKind = Literal["refused", "interrupted"]

INSTANCE_STATES: tuple[str, ...] = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
ACTION_KINDS: tuple[str, ...] = ("start", "stop", "none", "blocked")
# An instance's market, as EC2 describes it (InstanceLifecycle "spot", or none for on-demand).
ON_DEMAND, SPOT = "on-demand", "spot"
MARKETS: tuple[str, ...] = (ON_DEMAND, SPOT)
# Why a start went to on-demand while a spot instance of the pool was stopped: its price was not under
# Policy.spot_max_share of on-demand (or not known), or EC2 refused or interrupted it within Policy.spot_hold_s.
FALLBACK_REASONS: tuple[str, ...] = ("spot_price", "spot_refused", "spot_interrupted")

# The default idle time before a stop, chosen with bench/cost.py on the reference traces
# (lifecycle/simulation/traces/; cold start 135 s, $2.24/h): the shortest idle time whose p95 wait on the
# steady trace never exceeds the replaced CloudWatch rule's (135 s, one cold start), on that trace's
# seeds 1-6 (4 minutes: 135-140 s; 3 minutes: 140-149 s). On the bursty trace 5 minutes costs
# $36.77 against the replaced rule's $61.71 (-40%), 1.22x the hindsight optimum ($30.09), with a p95
# wait of 149 s against 135 s: there no idle time under 30 minutes matches the replaced rule's p95
# (2-15 minutes: 148-166 s), because sessions start at random and each one that finds the GPU
# stopped waits a cold start; 30 minutes matches it at $66.40, more than the replaced rule. On
# sparse-nightly it costs $14.81 against $44.45 (-67%) and no job waits 10 hours for a restart.
# Longer idle times add idle tails: 10 minutes is 1.47x, 30 minutes 2.21x the optimum on bursty.
DEFAULT_IDLE_STOP_S = 300.0

# Spot is preferred while its price is under this share of on-demand. In the g6e.2xlarge spot history of us-east-1
# (2024-08 to 2026-08, daily: shared/data/g6e-2xlarge-spot-us-east-1.csv) spot cost 37% of on-demand at the median
# and under 80% on 94% of days; its interruption band never passed ">20%" a month. An interruption costs about 200 s
# of on-demand time (the fallback's cold start of 135 s, its 60 s minimum, the redone part of a job): 0.055 hours.
# Counting even a 20% chance of one per run, a 15-minute run at 80% of on-demand saves 0.05 on-demand hours
# against 0.011 lost (at 95% the two are even); the margin left pays for the interrupted jobs' wait.
DEFAULT_SPOT_MAX_SHARE = 0.8
# After EC2 refused or interrupted a spot instance, starts go to on-demand for this long. A refusal costs the next
# start only a refused call (the same check starts the fallback), but reclaimed capacity rarely returns within
# minutes, and each interruption costs a cold start and redone work: half an hour keeps a burst's next sessions
# on on-demand without giving up spot for the day.
DEFAULT_SPOT_HOLD_S = 1800.0

# A periodic report (a GPU worker's heartbeat, a lifecycle check) is stale once this many in a row are missing.
MISSED_REPORTS = 3


def stale_after_s(period_s: float) -> float:
    """How old a report made every `period_s` seconds may be before it counts as stale: MISSED_REPORTS periods."""
    return MISSED_REPORTS * period_s


@dataclass(frozen=True)
class Instance:
    """One GPU instance as EC2 describes it; `launched_at` is its latest start (EC2's LaunchTime)."""

    instance_id: str
    state: InstanceState
    instance_type: str = G6E_2XLARGE
    launched_at: datetime | None = None
    market: str = ON_DEMAND

    def __post_init__(self) -> None:
        if self.state not in INSTANCE_STATES:
            raise ValueError(f"{self.instance_id}: unknown instance state {self.state!r}")
        if self.market not in MARKETS:
            raise ValueError(f"{self.instance_id}: unknown market {self.market!r}")


@dataclass(frozen=True)
class Heartbeat:
    """What a GPU worker last reported: the jobs it runs right now, whether its models are loaded, and when EC2
    interrupts its (spot) instance, once the interruption notice came."""

    instance_id: str
    at: datetime
    running_jobs: tuple[str, ...] = ()
    ready: bool = False
    interruption_at: datetime | None = None


@dataclass(frozen=True)
class SpotSetback:
    """EC2 refused to start a spot instance, or interrupted it, at `at` (with EC2's reason)."""

    kind: SetbackKind
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Refusal:
    """Why an instance cannot serve, kept in the control table until its configuration changes or an operator
    starts it: its GPU worker refused to start (`reasons`, and a `fingerprint` of what it checked against), or the
    lifecycle found it not ready within its boot grace (`source` "lifecycle", no fingerprint).

    `held_against` is the lifecycle's configuration fingerprint when it first held the instance (None: not yet);
    a different one since then means the configuration changed, so one more start is worth its price.
    """

    instance_id: str
    at: datetime
    reasons: tuple[str, ...]
    fingerprint: str = ""
    source: str = "worker"
    held_against: str | None = None

    def __str__(self) -> str:
        if self.source == "worker":
            return f"its worker refused to start: {'; '.join(self.reasons)}"
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Snapshot:
    """Everything one decision needs, gathered by the code around `decide`.

    `queue_visible` and `queue_in_flight` are the GPU queue's approximate counts, `low_visible` and `low_in_flight`
    the low-priority queue's: its jobs start no GPU, but keep a running one busy. `startable` is how many of the
    queue's visible jobs may still run, by the job table (a job that expired or was cancelled while queued keeps its
    message visible until a worker drops it); None when not known: all of them. `last_activity_at`
    holds, per instance, the latest moment it was known to run a job (remembered by the gatherer
    across heartbeats, e.g. a job's finish time); `month_spend_usd` is this month's GPU spend so far.
    """

    now: datetime
    instances: tuple[Instance, ...]
    queue_visible: int = 0
    queue_in_flight: int = 0
    heartbeats: tuple[Heartbeat, ...] = ()
    last_activity_at: Mapping[str, datetime] = field(default_factory=dict)
    month_spend_usd: float = 0.0
    hourly_price_usd: float = G6E_2XLARGE_HOURLY_USD
    # The on-demand price of each instance type of the pool in this region ($/h; a type missing: hourly_price_usd).
    on_demand_usd: Mapping[str, float] = field(default_factory=dict)
    # Instances that cannot serve: the refusals in the control table, the lifecycle's configuration fingerprint
    # now (lifecycle.live.refusals), and when each running instance's current run began (the run log's, which
    # is never before its last stop; EC2's LaunchTime where the log has none).
    refusals: tuple[Refusal, ...] = ()
    configuration: str = ""
    started_at: Mapping[str, datetime] = field(default_factory=dict)
    # Per spot instance: its current spot price ($/h; missing when not known) and its latest setback.
    spot_prices: Mapping[str, float] = field(default_factory=dict)
    spot_setbacks: Mapping[str, SpotSetback] = field(default_factory=dict)
    low_visible: int = 0
    low_in_flight: int = 0
    startable: int | None = None

    def __post_init__(self) -> None:
        if min(self.queue_visible, self.queue_in_flight, self.low_visible, self.low_in_flight) < 0:
            raise ValueError("queue counts cannot be negative")
        if self.startable is not None and self.startable < 0:
            raise ValueError("startable cannot be negative")

    @property
    def waiting(self) -> int:
        """The visible jobs that call for a GPU: normal-priority ones that may still run."""
        return self.queue_visible if self.startable is None else min(self.queue_visible, self.startable)

    @property
    def in_flight(self) -> int:
        """Messages received and not yet deleted, of either priority."""
        return self.queue_in_flight + self.low_in_flight

    @property
    def quiet(self) -> bool:
        """Nothing visible or in flight on either GPU queue: no work for a running instance."""
        return self.queue_visible == 0 and self.low_visible == 0 and self.in_flight == 0


@dataclass(frozen=True)
class Policy:
    """How the GPU pool is run; see DEFAULT_IDLE_STOP_S for why the default idle time is what it is.

    - idle_stop_s: seconds an instance must be idle (nothing visible, nothing in flight, no job on it)
      since its last activity before it is stopped.
    - min_instances / max_instances: instances kept running (or pending) at least / at most.
    - backlog_per_instance: visible jobs one running or pending instance may face; more starts another.
      Ten jobs of 10-40 s are about four minutes of work, close to two cold starts: a second
      instance started for less would be ready only when the backlog is nearly gone.
    - heartbeat_timeout_s: a heartbeat older than this is stale (stale_after_s of the heartbeat period; the
      live check passes GPUORCH_HEARTBEAT_SECONDS's, the default is a 30 s heartbeat's).
    - monthly_budget_usd: no start when this month's spend plus one hour of it would pass this.
    - boot_grace_s: a running instance whose worker has not reported since it started this long ago cannot
      serve: it is stopped and held (None: never; the simulator's instances have no workers).
    - spot_max_share: a stopped spot instance is started before an on-demand one while its spot price is under
      this share of the on-demand price (0: never preferred; see DEFAULT_SPOT_MAX_SHARE for the default).
    - spot_hold_s: after EC2 refused or interrupted a spot instance, it is not preferred for this long.
    """

    idle_stop_s: float = DEFAULT_IDLE_STOP_S
    min_instances: int = 0
    max_instances: int = 1
    backlog_per_instance: int = 10
    heartbeat_timeout_s: float = stale_after_s(30.0)
    monthly_budget_usd: float | None = None
    boot_grace_s: float | None = None
    spot_max_share: float = DEFAULT_SPOT_MAX_SHARE
    spot_hold_s: float = DEFAULT_SPOT_HOLD_S

    def __post_init__(self) -> None:
        if not (self.idle_stop_s >= 0 and math.isfinite(self.idle_stop_s)):
            raise ValueError("idle_stop_s must be a finite number of seconds, 0 or more")
        if self.min_instances < 0:
            raise ValueError("min_instances cannot be negative")
        if self.max_instances < max(1, self.min_instances):
            raise ValueError("max_instances must be at least 1 and at least min_instances")
        if self.backlog_per_instance < 1:
            raise ValueError("backlog_per_instance must be at least 1")
        if self.heartbeat_timeout_s <= 0:
            raise ValueError("heartbeat_timeout_s must be positive")
        if self.monthly_budget_usd is not None and self.monthly_budget_usd < 0:
            raise ValueError("monthly_budget_usd cannot be negative")
        if self.boot_grace_s is not None and self.boot_grace_s <= 0:
            raise ValueError("boot_grace_s must be positive (or None)")
        if not 0 <= self.spot_max_share <= 1:
            raise ValueError("spot_max_share must be between 0 and 1")
        if not (self.spot_hold_s >= 0 and math.isfinite(self.spot_hold_s)):
            raise ValueError("spot_hold_s must be a finite number of seconds, 0 or more")


@dataclass(frozen=True)
class Action:
    """One thing to do: start or stop an instance, nothing (with why), or a start refused (with why).

    A start names its instance's `market`; a spot start may name an on-demand `alternative` to start instead when
    EC2 refuses it, and an on-demand start chosen over a stopped spot instance names that instance (`instead_of`)
    and why (`fallback`, one of FALLBACK_REASONS).
    """

    kind: ActionKind
    instance_id: str | None
    reason: str
    market: str | None = None
    alternative: str | None = None
    fallback: str | None = None
    instead_of: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"unknown action kind {self.kind!r}")
        if self.kind in ("start", "stop") and not self.instance_id:
            raise ValueError(f"a {self.kind} action names its instance")
        if self.fallback is not None and self.fallback not in FALLBACK_REASONS:
            raise ValueError(f"unknown fallback reason {self.fallback!r}")

    def __str__(self) -> str:
        target = f" {self.instance_id}" if self.instance_id else ""
        return f"{self.kind}{target}: {self.reason}"


@dataclass(frozen=True)
class Decision:
    """The actions of one decision and the numbers it was made on (logged as one line each time)."""

    actions: tuple[Action, ...]
    queue_visible: int
    queue_in_flight: int
    running: int
    pending: int
    stopping: int
    wanted: int
    busy: tuple[str, ...] = ()
    idle_s: tuple[tuple[str, float], ...] = ()
    month_spend_usd: float = 0.0
    # Instances that cannot serve. `cannot_serve`: the refusal behind each stop of a running one (a boot-grace
    # one made by this decision, for the check to record); `held`: every one held now, stopped or being stopped;
    # `newly_held`: refusals to mark as held against the snapshot's configuration; `superseded`: refusals a
    # later ready heartbeat made obsolete, to clear.
    cannot_serve: tuple[Refusal, ...] = ()
    held: tuple[str, ...] = ()
    newly_held: tuple[Refusal, ...] = ()
    superseded: tuple[Refusal, ...] = ()
    interrupted: tuple[str, ...] = ()
    low_visible: int = 0
    low_in_flight: int = 0
    waiting: int = 0

    def of_kind(self, kind: ActionKind) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.kind == kind)

    @property
    def starts(self) -> tuple[str, ...]:
        return tuple(a.instance_id for a in self.of_kind("start"))

    @property
    def stops(self) -> tuple[str, ...]:
        return tuple(a.instance_id for a in self.of_kind("stop"))

    @property
    def blocked(self) -> tuple[Action, ...]:
        return self.of_kind("blocked")

    def numbers(self) -> str:
        """The inputs of the decision, as `key=value` pairs for a log line."""
        idle = ",".join(f"{i}:{s:.0f}s" for i, s in self.idle_s) or "-"
        low = f" low={self.low_visible}+{self.low_in_flight}" if self.low_visible or self.low_in_flight else ""
        return (f"visible={self.queue_visible} waiting={self.waiting} in_flight={self.queue_in_flight}{low} "
                f"running={self.running} "
                f"pending={self.pending} stopping={self.stopping} wanted={self.wanted} "
                f"busy={','.join(self.busy) or '-'} idle={idle} month_spend=${self.month_spend_usd:.2f}"
                f"{' interrupted=' + ','.join(self.interrupted) if self.interrupted else ''}")

    def __str__(self) -> str:
        return f"{self.numbers()} -> " + "; ".join(str(a) for a in self.actions)
