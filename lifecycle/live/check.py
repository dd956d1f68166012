"""One lifecycle check: gather the snapshot, decide, start or stop instances (the on-demand fallback when EC2 refuses
spot), keep the runs and what the markets did; one at a time."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable

from gpuorch.aws.dynamodb import decode_item, encode_item
from gpuorch.aws.sqs import queue_depth
from lifecycle.decision import decide, interruption_at, latest_heartbeats
from lifecycle.live.heartbeats import HeartbeatStore, WorkerReport
from lifecycle.live.market import MarketMemory, MarketRecord, SpotPrices
from lifecycle.live.pool import STARTED, STOPPING, CapacityError, InstancePool
from lifecycle.live.lease import Lease
from lifecycle.live.planner import Planner
from lifecycle.live.refusals import RefusalStore
from lifecycle.model import ON_DEMAND, SPOT, Action, Decision, Instance, Policy, Refusal, Snapshot, SpotSetback
from lifecycle.live.runs import RunLog
from lifecycle.market import next_start

if TYPE_CHECKING:
    from lifecycle.live.metrics import LifecycleMetrics

log = logging.getLogger(__name__)

STATUS_KEY = {"pk": "status", "sk": "lifecycle"}


@dataclass(frozen=True)
class LifecycleStatus:
    """What the last check decided, for /health and for jobs waiting on a GPU that will not start."""

    checked_at: str
    blocked: tuple[str, ...]
    actions: tuple[str, ...]
    # The pool's instances as that check left them: {instance_id, state, instance_type, launched_at, market}.
    instances: tuple[dict[str, Any], ...] = ()
    # The instances it held because they cannot serve (lifecycle.decision.assess_holds).
    held: tuple[str, ...] = ()
    # The last start the lifecycle made and its last fallback to on-demand (lifecycle.live.market.MarketRecord.view).
    market: dict[str, Any] | None = None

    @property
    def blocked_reason(self) -> str | None:
        return "; ".join(self.blocked) or None


class StatusStore:
    """The last check's outcome, one item in the control table."""

    def __init__(self, dynamodb, table: str):
        self._db, self._table = dynamodb, table

    def write(self, decision: Decision, now: datetime, instances: Iterable[Instance] = (),
              market: dict[str, Any] | None = None) -> None:
        self._db.put_item(TableName=self._table, Item=encode_item({
            **STATUS_KEY,
            "checked_at": now.isoformat(),
            "blocked": json.dumps([a.reason for a in decision.blocked]),
            "actions": json.dumps([str(a) for a in decision.actions]),
            "instances": json.dumps([instance_view(i) for i in instances]),
            "held": json.dumps(list(decision.held)),
            "market": json.dumps(market),
        }))

    def read(self) -> LifecycleStatus | None:
        item = self._db.get_item(TableName=self._table, Key=encode_item(STATUS_KEY)).get("Item")
        if item is None:
            return None
        status = decode_item(item)
        return LifecycleStatus(
            checked_at=status["checked_at"],
            blocked=tuple(json.loads(status["blocked"])),
            actions=tuple(json.loads(status["actions"])),
            instances=tuple(json.loads(status.get("instances", "[]"))),
            held=tuple(json.loads(status.get("held", "[]"))),
            market=json.loads(status.get("market", "null")),
        )


def instance_view(instance: Instance) -> dict[str, Any]:
    return {
        "instance_id": instance.instance_id,
        "state": instance.state,
        "instance_type": instance.instance_type,
        "launched_at": instance.launched_at.isoformat() if instance.launched_at else None,
        "market": instance.market,
    }


def describe_decision(decision: Decision) -> str:
    """The numbers a decision was made on, on one log line (as skypilot's autostop logs them)."""
    idle = ", ".join(f"{i} {s:.0f}s" for i, s in decision.idle_s) or "-"
    low = (f" low_visible={decision.low_visible} low_in_flight={decision.low_in_flight}"
           if decision.low_visible or decision.low_in_flight else "")
    return (
        f"visible={decision.queue_visible} waiting={decision.waiting} in_flight={decision.queue_in_flight}{low} "
        f"running={decision.running} "
        f"pending={decision.pending} stopping={decision.stopping} wanted={decision.wanted} "
        f"busy={','.join(decision.busy) or '-'} idle={idle} month=${decision.month_spend_usd:.2f}"
        f"{' interrupted=' + ','.join(decision.interrupted) if decision.interrupted else ''}"
    )


class LifecycleCheck:
    """Gathers what `decide` needs, acts on its answer, and records instance runs for the cost.

    `low_queue_url` is the low-priority queue's (its jobs start nothing, but keep a running instance); `startable`
    counts the jobs that may still take a GPU (JobStore.count_startable), so that visible messages of jobs that
    expired or were cancelled start nothing.
    With `refusals`, instances that cannot serve are stopped and held against `configuration`, the lifecycle's
    configuration fingerprint (lifecycle.live.build.configuration_of).
    `spot_prices` reads the spot instances' current prices (without it no spot instance is preferred) and `market`
    remembers spot refusals and interruptions across checks, and the last start and fallback, for /health.
    `planner` gives the policy of each check from its snapshot (lifecycle.live.planner; without it, `policy`).
    """

    def __init__(self, *, pool: InstancePool, heartbeats: HeartbeatStore, runs: RunLog, lease: Lease,
                 status: StatusStore, sqs, queue_url: str, policy: Policy, hourly_price: Callable[[str], float],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 metrics: LifecycleMetrics | None = None, refusals: RefusalStore | None = None,
                 configuration: str = "", spot_prices: SpotPrices | None = None, market: MarketMemory | None = None,
                 low_queue_url: str | None = None, startable: Callable[[datetime], int] | None = None,
                 planner: Planner | None = None):
        self.pool, self.heartbeats, self.runs, self.lease, self.status = pool, heartbeats, runs, lease, status
        self.sqs, self.queue_url, self.low_queue_url = sqs, queue_url, low_queue_url
        self.startable = startable
        self.policy, self.hourly_price, self.clock = policy, hourly_price, clock
        self.metrics = metrics
        self.refusals, self.configuration = refusals, configuration
        self.spot_prices, self.market = spot_prices, market
        self.planner = planner
        self._plan = ""
        self._current = policy  # the policy of the latest check, for the fresh decisions before its stops

    def snapshot(self, instances: tuple | None = None, reports: tuple[WorkerReport, ...] | None = None,
                 record: MarketRecord | None = None) -> Snapshot:
        now = self.clock()
        instances = self.pool.describe() if instances is None else instances
        depth = queue_depth(self.sqs, self.queue_url)
        low = queue_depth(self.sqs, self.low_queue_url) if self.low_queue_url else None
        beats = self.heartbeats.all() if reports is None else reports
        types = {i.instance_type for i in instances}
        open_runs = self.runs.heads()[0]
        return Snapshot(
            now=now,
            instances=instances,
            queue_visible=depth.visible,
            queue_in_flight=depth.in_flight,
            heartbeats=tuple(beat.heartbeat for beat in beats),
            last_activity_at={beat.heartbeat.instance_id: beat.last_busy_at for beat in beats if beat.last_busy_at},
            month_spend_usd=self.runs.month_spend(now),
            hourly_price_usd=max((self.hourly_price(t) for t in types), default=self.hourly_price("")),
            on_demand_usd={t: self.hourly_price(t) for t in types},
            refusals=self.refusals.refusals() if self.refusals is not None else (),
            configuration=self.configuration,
            started_at={run.instance_id: run.started_at for run in open_runs},
            spot_prices=self._prices(instances),
            spot_setbacks=record.setbacks if record is not None else {},
            low_visible=low.visible if low else 0,
            low_in_flight=low.in_flight if low else 0,
            # Asked only when messages are visible: their jobs may have expired or been cancelled meanwhile.
            startable=self.startable(now) if self.startable is not None and depth.visible else None,
        )

    def _remembered(self) -> MarketRecord:
        return self.market.read() if self.market is not None else MarketRecord()

    def _prices(self, instances) -> dict[str, float]:
        return self.spot_prices.of(instances) if self.spot_prices is not None else {}

    def run(self) -> Decision | None:
        """One check; None when another check holds the lease (it decides for both)."""
        if not self.lease.acquire():
            log.info("lifecycle check skipped: another check is running")
            return None
        try:
            instances = self.pool.describe()
            reports = self.heartbeats.all()
            record = self._remembered()
            if self._note_interruptions(instances, reports, record):
                record = self._remembered()
            # Runs are brought up to date before the month's spend is read for the budget.
            self.runs.reconcile(instances, self._prices(instances))
            snapshot = self.snapshot(instances, reports, record)
            self._current = self._policy_for(snapshot)
            decision = decide(snapshot, self._current)
            log.info("lifecycle: %s", describe_decision(decision))
            self._keep_refusals(decision)
            cannot_serve = {refusal.instance_id: refusal for refusal in decision.cannot_serve}
            acted = False
            for action in decision.actions:
                if action.kind == "start":
                    acted |= self._start(action)
                elif action.kind == "stop" and action.instance_id in cannot_serve:
                    acted |= self._stop_cannot_serve(cannot_serve[action.instance_id])
                elif action.kind == "stop":
                    acted |= self._stop_if_still_idle(action.instance_id, action.reason, record)
                elif action.kind == "blocked":
                    log.warning("lifecycle: no start: %s", action.reason)
            if acted:
                instances = self.pool.describe()
                self.runs.reconcile(instances, self._prices(instances))
                record = self._remembered()
            now = self.clock()
            # The start the pool would take next, as this check leaves it and at its prices: a job's quote made while
            # no GPU runs prices a cold GPU at it.
            upcoming = next_start(replace(snapshot, instances=tuple(instances)), self._current, decision.held)
            self.status.write(decision, now, instances, {**record.view(), "next_start": upcoming})
            if self.metrics is not None:
                # The spend as the decision read it: after a start it grows only by the new run's first seconds.
                self.metrics.observe_check((i.state for i in instances), decision.month_spend_usd, now)
                self.metrics.held.set(len(decision.held))
            return decision
        finally:
            self.lease.release()

    def _policy_for(self, snapshot: Snapshot) -> Policy:
        """The policy of this check; a plan unlike the last one is logged."""
        if self.planner is None:
            return self.policy
        policy, why = self.planner(snapshot)
        if why != self._plan:
            log.info("lifecycle policy: %s", why)
            self._plan = why
        return policy

    def _note_interruptions(self, instances, reports: tuple[WorkerReport, ...], record: MarketRecord) -> bool:
        """Remember each spot interruption a worker reported that is not remembered yet (spot is held off after it),
        and mark its run; True when one was new. A stopped instance counts too: EC2 may stop it within a check
        interval of its notice, and its run is marked before the reconcile closes it."""
        beats = latest_heartbeats(r.heartbeat for r in reports)
        noted = False
        for instance in instances:
            at = interruption_at(instance, beats.get(instance.instance_id))
            known = record.setbacks.get(instance.instance_id)
            if at is None or (known is not None and known.at >= at):
                continue
            reason = f"spot interruption notice: EC2 stops it at {at.isoformat()}"
            log.warning("lifecycle: %s is interrupted: %s", instance.instance_id, reason)
            if self.metrics is not None:
                self.metrics.interruptions.inc()
            if self.market is not None:
                self.market.record_setback(instance.instance_id, SpotSetback("interrupted", at, reason))
            self.runs.mark_interrupted(instance.instance_id, at)
            noted = True
        return noted

    def _start(self, action: Action) -> bool:
        try:
            outcome = self.pool.start(action.instance_id)
        except CapacityError as exc:
            return self._refused(action, exc)
        log.info("lifecycle: start %s (%s): %s", action.instance_id, action.reason, outcome)
        if outcome.startswith(STARTED):  # not when it was already pending or running
            self._started(action)
        return True

    def _keep_refusals(self, decision: Decision) -> None:
        """Clear the refusals a later heartbeat superseded; mark the new holds with the configuration."""
        if self.refusals is None:
            return
        for refusal in decision.superseded:
            if self.refusals.clear(refusal):
                log.info("lifecycle: %s reported since its refusal at %s: no longer held", refusal.instance_id,
                         refusal.at.isoformat())
        for refusal in decision.newly_held:
            self.refusals.hold(refusal)

    def _stop_cannot_serve(self, refusal: Refusal) -> bool:
        """Stop an instance that cannot serve, its refusal recorded first, so /health and the next checks see why."""
        instance_id = refusal.instance_id
        # As for an idle stop: decide again on fresh numbers (the worker may have just reported ready).
        fresh = decide(self.snapshot(), self._current)
        if instance_id not in {r.instance_id for r in fresh.cannot_serve}:
            log.info("lifecycle: not stopping %s after all: %s", instance_id, describe_decision(fresh))
            return False
        if refusal.source != "worker" and self.refusals is not None:
            self.refusals.record(refusal)
        outcome = self.pool.stop(instance_id)
        log.warning("lifecycle: stop %s: it cannot serve: %s; held until its configuration changes or an operator "
                    "starts it (gpuorch gpu start %s): %s", instance_id, refusal, instance_id, outcome)
        if self.metrics is not None and outcome == STOPPING:
            self.metrics.refusals.labels("worker_refused" if refusal.source == "worker" else "not_ready").inc()
        return True

    def _refused(self, action: Action, exc: CapacityError) -> bool:
        """EC2 would not start it now; a spot instance is held off, and its on-demand alternative starts instead."""
        # The next check tries again: EC2 capacity comes and goes.
        log.warning("lifecycle: cannot start %s now: %s", action.instance_id, exc)
        if self.metrics is not None:
            self.metrics.start_refusals.inc()
        if action.market != SPOT:
            return False
        if self.market is not None:
            self.market.record_setback(action.instance_id, SpotSetback("refused", self.clock(), exc.reason))
        if action.alternative is None:
            return False
        return self._start(Action("start", action.alternative, f"spot {action.instance_id} refused: {exc.reason}",
                                  market=ON_DEMAND, fallback="spot_refused", instead_of=action.instance_id))

    def _started(self, action: Action) -> None:
        now = self.clock()
        market = action.market or ON_DEMAND
        if self.metrics is not None:
            self.metrics.starts.labels(market).inc()
        if self.market is not None:
            self.market.record_start(action.instance_id, market, now)
        if action.fallback is None:
            return
        log.warning("lifecycle: fallback (%s): on-demand %s started instead of spot %s: %s",
                    action.fallback, action.instance_id, action.instead_of, action.reason)
        if self.metrics is not None:
            self.metrics.fallbacks.labels(action.fallback).inc()
        if self.market is not None:
            self.market.record_fallback(action.instance_id, action.instead_of, action.fallback, action.reason, now)

    def _stop_if_still_idle(self, instance_id: str, reason: str, record: MarketRecord) -> bool:
        # A job may have arrived since the snapshot: decide again on fresh numbers just before stopping.
        fresh = decide(self.snapshot(record=record), self._current)
        if instance_id not in fresh.stops:
            log.info("lifecycle: not stopping %s after all: %s", instance_id, describe_decision(fresh))
            return False
        outcome = self.pool.stop(instance_id)
        log.info("lifecycle: stop %s (%s): %s", instance_id, reason, outcome)
        if self.metrics is not None and outcome == STOPPING:  # not when it was already stopping or stopped
            self.metrics.stops.inc()
        return True

