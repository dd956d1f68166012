"""Every run of a GPU instance (start, stop, type, market, hourly price, spot interruption) in the control table,
for the cost."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Literal, Mapping

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import all_items, decode_item, encode_item
from gpuorch.aws.failures import condition_failed, error_code
from gpuorch.clock import Clock, timestamp, utc_now
from lifecycle import billing
from lifecycle.model import G6E_2XLARGE, G6E_2XLARGE_HOURLY_USD, ON_DEMAND, SPOT, Instance

log = logging.getLogger(__name__)

# One item per instance: its open run (if any) and when its last run stopped.
HEAD_PK = "run-head"
# Closed runs, partitioned by the UTC month they stopped in ("run#2025-06"), sorted by start.
CLOSED_PK_PREFIX = "run#"
DEFAULT_PRICES: Mapping[str, float] = {G6E_2XLARGE: G6E_2XLARGE_HOURLY_USD}
# States in which an instance is (or is about to be) billed; EC2 bills `running` only, from its LaunchTime.
ACTIVE_STATES = ("pending", "running")
TRANSACTION_CANCELLED = "TransactionCanceledException"


@dataclass(frozen=True)
class OpenRun:
    """A run that has started and not yet been seen to stop."""

    instance_id: str
    started_at: datetime
    instance_type: str = G6E_2XLARGE
    market: str = ON_DEMAND
    hourly_usd: float = G6E_2XLARGE_HOURLY_USD
    interrupted_at: datetime | None = None  # the time of a spot interruption notice received during the run


@dataclass(frozen=True)
class RunRecord:
    """One run of an instance; `stopped_at` is None while it runs, `interrupted_at` set when EC2 interrupted it."""

    instance_id: str
    started_at: datetime
    stopped_at: datetime | None
    instance_type: str
    market: str
    hourly_usd: float
    interrupted_at: datetime | None = None

    def billing_run(self, now: datetime) -> billing.Run:
        """The run on billing's seconds clock; an open run counts up to `now`."""
        stopped = self.stopped_at or max(now, self.started_at)
        return billing.Run(self.instance_id, self.started_at.timestamp(), stopped.timestamp())


@dataclass(frozen=True)
class RunAction:
    """Open a run for an instance at `at`, or close its open run (the one that started at `run_started_at`)."""

    kind: Literal["open", "close"]
    instance_id: str
    at: datetime
    reason: str
    instance_type: str = G6E_2XLARGE
    market: str = ON_DEMAND
    run_started_at: datetime | None = None
    hourly_usd: float | None = None  # a closing run's price, fixed when it opened
    interrupted_at: datetime | None = None  # a closing run's spot interruption, if it had one

    def __str__(self) -> str:
        return f"{self.kind} run of {self.instance_id} at {timestamp(self.at)}: {self.reason}"


def reconcile_actions(open_runs: Iterable[OpenRun], instances: Iterable[Instance], now: datetime,
                      last_stopped: Mapping[str, datetime] | None = None) -> list[RunAction]:
    """The runs to close and to open so that the log matches what EC2 shows now.

    - An open run whose instance is stopping, stopped, gone, or missing closes now.
    - An open run whose instance has a later LaunchTime missed a stop and a start between two looks:
      it closes at that LaunchTime and a new run opens there.
    - A running or pending instance without an open run opens one at its LaunchTime, but never before
      its last run stopped (moto keeps the first LaunchTime forever) nor after now.
    """
    last_stopped = last_stopped or {}
    by_id = {i.instance_id: i for i in instances}
    open_by_id = {r.instance_id: r for r in open_runs}
    actions: list[RunAction] = []
    stopped_here: dict[str, datetime] = {}
    for run in sorted(open_by_id.values(), key=lambda r: r.instance_id):
        instance = by_id.get(run.instance_id)
        if instance is None:
            reason, at = "instance no longer in the pool", now
        elif instance.state not in ACTIVE_STATES:
            reason, at = f"instance {instance.state}", now
        elif instance.launched_at is not None and instance.launched_at > run.started_at:
            reason, at = f"instance restarted at {timestamp(instance.launched_at)}", instance.launched_at
        else:
            continue
        at = max(at, run.started_at)
        actions.append(RunAction("close", run.instance_id, at, reason, run.instance_type, run.market,
                                 run.started_at, run.hourly_usd, run.interrupted_at))
        stopped_here[run.instance_id] = at
    for instance in sorted(by_id.values(), key=lambda i: i.instance_id):
        if instance.state not in ACTIVE_STATES:
            continue
        if instance.instance_id in open_by_id and instance.instance_id not in stopped_here:
            continue
        at = instance.launched_at or now
        floor = stopped_here.get(instance.instance_id) or last_stopped.get(instance.instance_id)
        if floor is not None and floor > at:
            at = floor
        at = min(at, now)
        actions.append(RunAction("open", instance.instance_id, at, f"instance {instance.state}",
                                 instance.instance_type, instance.market))
    return actions


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def month_start(now: datetime) -> datetime:
    """Midnight UTC on the first day of `now`'s month."""
    utc = now.astimezone(timezone.utc)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def months_between(start: datetime, end: datetime) -> list[str]:
    """The UTC months ("2025-06") from `start`'s to `end`'s, both included."""
    year, month = start.astimezone(timezone.utc).year, start.astimezone(timezone.utc).month
    last = end.astimezone(timezone.utc)
    months = []
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def overlaps(record: RunRecord, start: datetime, end: datetime, now: datetime) -> bool:
    """Whether the run has a part in [start, end), by billing's rule."""
    run = record.billing_run(now)
    return billing.clip(run, start.timestamp(), end.timestamp()) is not None


def spend(records: Iterable[RunRecord], start: datetime, end: datetime, now: datetime) -> float:
    """Dollars of the runs' parts in [start, end): per second, at least 60 s for a start inside it."""
    by_price: dict[float, list[billing.Run]] = {}
    for record in records:
        by_price.setdefault(record.hourly_usd, []).append(record.billing_run(now))
    period = (start.timestamp(), end.timestamp())
    return sum(billing.report(runs, (), price, period=period).dollars for price, runs in by_price.items())


class RunLog:
    """Instance runs in the control table, reconciled with what EC2 describes; written conditionally.

    `prices` are on-demand hourly prices by instance type; a spot run is priced at the spot price the lifecycle
    read when it opened (reconcile's `spot_prices`), else from `spot_prices` by type, else at the on-demand price
    (what a spot instance costs at most by default). A type with no price is priced at the dearest one known, so a
    budget check errs on the safe side.
    """

    def __init__(self, dynamodb_client, table: str, *, prices: Mapping[str, float] = DEFAULT_PRICES,
                 spot_prices: Mapping[str, float] | None = None, clock: Clock = utc_now):
        if not prices or any(p < 0 for p in prices.values()):
            raise ValueError("prices must name at least one instance type, none negative")
        self._db = dynamodb_client
        self._table = table
        self.prices = dict(prices)
        self.spot_prices = dict(spot_prices or {})
        self._clock = clock

    def hourly_price(self, instance_type: str, market: str = ON_DEMAND) -> float:
        if market == SPOT and instance_type in self.spot_prices:
            return self.spot_prices[instance_type]
        if instance_type in self.prices:
            return self.prices[instance_type]
        dearest = max(self.prices.values())
        log.warning("runs: no price for %s; counting it at $%.2f/h, the dearest known", instance_type, dearest)
        return dearest

    def heads(self) -> tuple[tuple[OpenRun, ...], dict[str, datetime]]:
        """The open runs, and each instance's last stop."""
        open_runs, last_stopped = [], {}
        for item in self._query({"KeyConditionExpression": "pk = :pk",
                                 "ExpressionAttributeValues": encode_item({":pk": HEAD_PK})}):
            instance_id = item["sk"]
            if "last_stopped_at" in item:
                last_stopped[instance_id] = datetime.fromisoformat(item["last_stopped_at"])
            if "started_at" in item:
                open_runs.append(OpenRun(
                    instance_id=instance_id,
                    started_at=datetime.fromisoformat(item["started_at"]),
                    instance_type=item["instance_type"],
                    market=item["market"],
                    hourly_usd=float(item["hourly_usd"]),
                    interrupted_at=_moment(item.get("interrupted_at")),
                ))
        return tuple(open_runs), last_stopped

    def reconcile(self, instances: Iterable[Instance], spot_prices: Mapping[str, float] | None = None) -> list[str]:
        """Open and close runs to match `instances` (the whole pool, as described now); what changed.
        `spot_prices`: each spot instance's current price, by instance id, which a run opened now is priced at."""
        now = self._clock()
        open_runs, last_stopped = self.heads()
        done = []
        for action in reconcile_actions(open_runs, tuple(instances), now, last_stopped):
            applied = (self._open(action, (spot_prices or {}).get(action.instance_id)) if action.kind == "open"
                       else self._close(action))
            if applied:
                log.info("runs: %s", action)
                done.append(str(action))
            else:
                log.info("runs: %s already done by another writer", action)
        return done

    def mark_interrupted(self, instance_id: str, at: datetime) -> bool:
        """Note on the instance's open run that EC2 interrupts it at `at` (its spot notice); False when no run that
        started by then is open, or the mark is there already."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=encode_item({"pk": HEAD_PK, "sk": instance_id}),
                UpdateExpression="SET interrupted_at = :at",
                ConditionExpression="started_at <= :at AND attribute_not_exists(interrupted_at)",
                ExpressionAttributeValues=encode_item({":at": timestamp(at)}),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        log.info("runs: the run of %s is interrupted at %s", instance_id, timestamp(at))
        return True

    def _open(self, action: RunAction, spot_price: float | None = None) -> bool:
        price = spot_price if action.market == SPOT and spot_price is not None else self.hourly_price(
            action.instance_type, action.market)
        try:
            self._db.update_item(
                TableName=self._table,
                Key=encode_item({"pk": HEAD_PK, "sk": action.instance_id}),
                UpdateExpression="SET started_at = :s, instance_type = :t, market = :m, hourly_usd = :p",
                ConditionExpression="attribute_not_exists(started_at)",
                ExpressionAttributeValues=encode_item({
                    ":s": timestamp(action.at),
                    ":t": action.instance_type,
                    ":m": action.market,
                    # A float, so that a whole-dollar price is stored as 3.0 like every other one.
                    ":p": float(price),
                }),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def _close(self, action: RunAction) -> bool:
        started = timestamp(action.run_started_at)
        stopped = timestamp(action.at)
        month = action.at.astimezone(timezone.utc).strftime("%Y-%m")
        head_key = encode_item({"pk": HEAD_PK, "sk": action.instance_id})
        try:
            # The head's condition makes the close happen once; the transaction keeps both writes together.
            self._db.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self._table,
                    "Key": head_key,
                    "UpdateExpression": (
                        "SET last_stopped_at = :stop REMOVE started_at, instance_type, market, hourly_usd, "
                        "interrupted_at"
                    ),
                    "ConditionExpression": "started_at = :start",
                    "ExpressionAttributeValues": encode_item({":start": started, ":stop": stopped}),
                }},
                {"Put": {
                    "TableName": self._table,
                    "Item": encode_item({
                        "pk": CLOSED_PK_PREFIX + month,
                        "sk": f"{started}#{action.instance_id}",
                        "instance_id": action.instance_id,
                        "started_at": started,
                        "stopped_at": stopped,
                        "instance_type": action.instance_type,
                        "market": action.market,
                        "hourly_usd": float(action.hourly_usd),
                        **({"interrupted_at": timestamp(action.interrupted_at)} if action.interrupted_at else {}),
                    }),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }},
            ])
        except ClientError as exc:
            if error_code(exc) == TRANSACTION_CANCELLED:
                return False
            raise
        return True

    def records(self, start: datetime, end: datetime, *, now: datetime | None = None) -> tuple[RunRecord, ...]:
        """Every run with a part in [start, end), open ones (counted up to `now`) included, by start."""
        now = now or self._clock()
        found = [
            RunRecord(r.instance_id, r.started_at, None, r.instance_type, r.market, r.hourly_usd, r.interrupted_at)
            for r in self.heads()[0]
        ]
        for month in months_between(start, max(now, end)):
            for item in self._query({
                "KeyConditionExpression": "pk = :pk AND sk < :end",
                "ExpressionAttributeValues": encode_item({":pk": CLOSED_PK_PREFIX + month, ":end": timestamp(end)}),
            }):
                found.append(RunRecord(
                    instance_id=item["instance_id"],
                    started_at=datetime.fromisoformat(item["started_at"]),
                    stopped_at=datetime.fromisoformat(item["stopped_at"]),
                    instance_type=item["instance_type"],
                    market=item["market"],
                    hourly_usd=float(item["hourly_usd"]),
                    interrupted_at=_moment(item.get("interrupted_at")),
                ))
        inside = [r for r in found if overlaps(r, start, end, now)]
        return tuple(sorted(inside, key=lambda r: (r.started_at, r.instance_id)))

    def runs(self, start: datetime, end: datetime, *, now: datetime | None = None) -> tuple[billing.Run, ...]:
        """The runs with a part in [start, end), unclipped, on billing's seconds clock (open ones end at `now`)."""
        now = now or self._clock()
        return tuple(r.billing_run(now) for r in self.records(start, end, now=now))

    def spend(self, start: datetime, end: datetime, *, now: datetime | None = None) -> float:
        """GPU dollars of [start, end) by billing's rules, each run at the price it opened with."""
        now = now or self._clock()
        return spend(self.records(start, end, now=now), start, end, now)

    def month_spend(self, now: datetime | None = None) -> float:
        """GPU dollars since the start of `now`'s UTC month (default: the clock's now)."""
        now = now or self._clock()
        return self.spend(month_start(now), now, now=now)

    def _query(self, query: dict) -> Iterable[dict]:
        """The query's items, every page, decoded."""
        return map(decode_item, all_items(self._db, "query", TableName=self._table, ConsistentRead=True, **query))
