"""What GPU workers report: their heartbeats in the control table."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import Clock, timestamp, utc_now
from lifecycle.live.instance_items import HEARTBEAT, INSTANCE_ITEM, item_key, read_items
from lifecycle.model import Heartbeat

log = logging.getLogger(__name__)

# A heartbeat item outlives the staleness limit (lifecycle.model.stale_after_s) by far, then expires.
HEARTBEAT_TTL_S = 3600


@dataclass(frozen=True)
class WorkerReport:
    """A worker's latest heartbeat, the latest moment it said it was running a job, and the latest moment
    ComfyUI answered it (None: not known)."""

    heartbeat: Heartbeat
    last_busy_at: datetime | None = None
    comfyui_at: datetime | None = None


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


class HeartbeatStore:
    """One item per GPU instance, keyed by its ARN (lifecycle.live.instance_items), expiring `ttl_s` after its last
    beat.

    `ttl_s` should exceed the lifecycle policy's heartbeat timeout, so the decision still sees a
    stale heartbeat as stale before a dead worker's item vanishes. `instance_arn` (an instance id -> its ARN, as
    IAM names it) is what a worker beats with; a store that only reads needs none.
    """

    def __init__(self, dynamodb_client, table: str, *, ttl_s: float, clock: Clock = utc_now,
                 instance_arn: Callable[[str], str] | None = None):
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._db = dynamodb_client
        self._table = table
        self.ttl_s = ttl_s
        self._clock = clock
        self._instance_arn = instance_arn

    def beat(self, instance_id: str, running_jobs: Iterable[str], ready: bool,
             last_busy_at: datetime | None = None, *, comfyui_at: datetime | None = None,
             interruption_at: datetime | None = None) -> bool:
        """Record a heartbeat; False when a newer one is already stored (a delayed beat changes nothing).

        A beat without `last_busy_at` (or `comfyui_at`) keeps the one stored, so a restarted worker does not
        forget it. `interruption_at` is when EC2 interrupts the instance (its spot notice): a beat without it
        removes the stored one, so the next run of a spot instance EC2 interrupted starts clean.
        """
        if self._instance_arn is None:
            raise TypeError("this HeartbeatStore only reads: it was made without instance_arn")
        now = self._clock()
        expires_at = math.ceil((now + timedelta(seconds=self.ttl_s)).timestamp())
        names = {"#at": "at", "#ready": "ready", "#jobs": "running_jobs", "#exp": "expires_at", "#item": INSTANCE_ITEM}
        values = {":at": timestamp(now), ":ready": bool(ready), ":jobs": list(running_jobs), ":exp": expires_at,
                  ":item": HEARTBEAT}
        update = "SET #at = :at, #ready = :ready, #jobs = :jobs, #exp = :exp, #item = :item"
        if last_busy_at is not None:
            names["#busy"] = "last_busy_at"
            values[":busy"] = timestamp(last_busy_at)
            update += ", #busy = :busy"
        if comfyui_at is not None:
            names["#comfyui"] = "comfyui_at"
            values[":comfyui"] = timestamp(comfyui_at)
            update += ", #comfyui = :comfyui"
        names["#notice"] = "interruption_at"
        if interruption_at is not None:
            values[":notice"] = timestamp(interruption_at)
            update += ", #notice = :notice"
        else:
            update += " REMOVE #notice"
        try:
            self._db.update_item(
                TableName=self._table,
                Key=encode_item(item_key(HEARTBEAT, self._instance_arn(instance_id))),
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#at) OR #at <= :at",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=encode_item(values),
            )
        except ClientError as exc:
            if condition_failed(exc):
                log.debug("heartbeat %s at %s: a newer one is stored", instance_id, values[":at"])
                return False
            raise
        return True

    def all(self) -> tuple[WorkerReport, ...]:
        """Every unexpired heartbeat, by instance id (expired ones are skipped: TTL deletion lags)."""
        now = self._clock()
        reports = []
        for item in map(decode_item, read_items(self._db, self._table, HEARTBEAT)):
            if item["expires_at"] <= now.timestamp():
                continue
            notice = item.get("interruption_at")
            beat = Heartbeat(
                instance_id=item["sk"],
                at=_parse(item["at"]),
                running_jobs=tuple(item.get("running_jobs", ())),
                ready=item.get("ready", False),
                interruption_at=_parse(notice) if notice else None,
            )
            busy = item.get("last_busy_at")
            comfyui = item.get("comfyui_at")
            reports.append(WorkerReport(beat, _parse(busy) if busy else None, _parse(comfyui) if comfyui else None))
        return tuple(sorted(reports, key=lambda r: r.heartbeat.instance_id))

    def heartbeats(self) -> tuple[Heartbeat, ...]:
        """The heartbeats alone, as `Snapshot.heartbeats` takes them."""
        return tuple(r.heartbeat for r in self.all())


def last_activity(reports: Iterable[WorkerReport]) -> dict[str, datetime]:
    """Each instance's reported last busy moment, as `Snapshot.last_activity_at` takes it."""
    return {r.heartbeat.instance_id: r.last_busy_at for r in reports if r.last_busy_at is not None}
