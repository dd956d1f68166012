"""Each job's webhook deliveries in the control table: the tries, their answers, the next try, and which are due.

One item per delivery (pk "delivery#<job id>", sk its topic: the event, or `job.progress#042`), read by the job's
owner through the API; and, while one waits for a later try, a marker in the "delivery-due" partition sorted by
when (sk "<next try>#<job id>#<topic>"), which celery beat's sweep reads to find what is due. Both expire with the
job's record.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import all_items, decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import Clock, timestamp, utc_now
from gpuorch.webhooks.schedule import PENDING

log = logging.getLogger(__name__)

DELIVERY_PK_PREFIX = "delivery#"
DUE_PK = "delivery-due"
# A delivery's tries kept in its item (the first ones and the latest): a receiver down for hours is tried 8 times
# per round, and a resend starts a round; the item stays far below DynamoDB's 400 KB.
MAX_KEPT_TRIES = 50


@dataclass(frozen=True)
class Attempt:
    """One try: when, the receiver's status code (None: no answer), why it failed, how long it took."""

    at: str
    status_code: int | None
    error: str | None
    duration_ms: float

    def as_record(self) -> dict[str, Any]:
        return {"at": self.at, "status_code": self.status_code, "error": self.error,
                "duration_ms": round(self.duration_ms, 1)}


@dataclass(frozen=True)
class Delivery:
    job_id: str
    topic: str
    event: str
    url: str
    key_id: str
    message_id: str
    state: str
    created_at: str
    next_try_at: str | None = None
    round_tries: int = 0
    attempts: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Delivery":
        data = decode_item(item)
        return cls(job_id=data["pk"].removeprefix(DELIVERY_PK_PREFIX), topic=data["sk"], event=data["event"],
                   url=data["url"], key_id=data.get("key_id", ""), message_id=data["message_id"],
                   state=data["state"], created_at=data["created_at"], next_try_at=data.get("next_try_at"),
                   round_tries=int(data.get("round_tries", 0)), attempts=tuple(data.get("attempts", ())))


def due_sk(at: datetime, job_id: str, topic: str) -> str:
    return f"{timestamp(at)}#{job_id}#{topic}"


@dataclass(frozen=True)
class DueMarker:
    sk: str
    job_id: str
    topic: str


class DeliveryStore:
    """Webhook deliveries and their due markers, in the control table."""

    def __init__(self, dynamodb_client, table: str, *, ttl_seconds: int, clock: Clock = utc_now):
        self._db, self._table, self._ttl, self._clock = dynamodb_client, table, ttl_seconds, clock

    def _key(self, job_id: str, topic: str) -> dict:
        return encode_item({"pk": DELIVERY_PK_PREFIX + job_id, "sk": topic})

    def _expires(self, now: datetime) -> int:
        return math.ceil((now + timedelta(seconds=self._ttl)).timestamp())

    def open(self, job_id: str, topic: str, *, event: str, url: str, key_id: str,
             message_id: str) -> Delivery | None:
        """Record a new delivery, pending, and return it; None when the job already has one of this topic (announced
        twice)."""
        now = self._clock()
        item = {"pk": DELIVERY_PK_PREFIX + job_id, "sk": topic, "event": event, "url": url, "key_id": key_id,
                "message_id": message_id, "state": PENDING, "created_at": timestamp(now), "round_tries": 0,
                "attempts": [], "expires_at": self._expires(now)}
        try:
            self._db.put_item(TableName=self._table, Item=encode_item(item),
                              ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise
        return Delivery(job_id=job_id, topic=topic, event=event, url=url, key_id=key_id, message_id=message_id,
                        state=PENDING, created_at=item["created_at"])

    def get(self, job_id: str, topic: str) -> Delivery | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(job_id, topic), ConsistentRead=True).get("Item")
        return Delivery.from_item(item) if item else None

    def for_job(self, job_id: str) -> list[Delivery]:
        """Every delivery of the job, by topic."""
        return [Delivery.from_item(item) for item in all_items(
            self._db, "query", TableName=self._table, KeyConditionExpression="pk = :pk", ConsistentRead=True,
            ExpressionAttributeValues=encode_item({":pk": DELIVERY_PK_PREFIX + job_id}))]

    def record(self, delivery: Delivery, attempt: Attempt, state: str, next_try: datetime | None) -> None:
        """Add a try to the delivery with its outcome; a later try gets a due marker for the sweep."""
        now = self._clock()
        update = "SET #state = :state, round_tries = round_tries + :one, next_try_at = :next, "
        values: dict[str, Any] = {":state": state, ":one": 1, ":next": timestamp(next_try) if next_try else None}
        if len(delivery.attempts) < MAX_KEPT_TRIES:
            update += "attempts = list_append(attempts, :attempt)"
            values[":attempt"] = [attempt.as_record()]
        else:  # the first try stays, so the list shows when it all began
            update += "attempts = :attempts"
            values[":attempts"] = [delivery.attempts[0], *delivery.attempts[-(MAX_KEPT_TRIES - 2):],
                                   attempt.as_record()]
        self._db.update_item(TableName=self._table, Key=self._key(delivery.job_id, delivery.topic),
                             UpdateExpression=update, ExpressionAttributeNames={"#state": "state"},
                             ExpressionAttributeValues=encode_item(values))
        if next_try is not None:
            self._db.put_item(TableName=self._table, Item=encode_item({
                "pk": DUE_PK, "sk": due_sk(next_try, delivery.job_id, delivery.topic), "job_id": delivery.job_id,
                "topic": delivery.topic, "expires_at": self._expires(now)}))

    def reopen(self, job_id: str, topic: str) -> Delivery | None:
        """A resend: the delivery pending again, its round of tries started afresh; None when it does not exist."""
        try:
            answer = self._db.update_item(
                TableName=self._table, Key=self._key(job_id, topic),
                UpdateExpression="SET #state = :pending, round_tries = :zero, next_try_at = :none",
                ConditionExpression="attribute_exists(pk)", ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=encode_item({":pending": PENDING, ":zero": 0, ":none": None}),
                ReturnValues="ALL_NEW")
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise
        return Delivery.from_item(answer["Attributes"])

    def due(self, now: datetime, limit: int = 100) -> list[DueMarker]:
        """The markers of tries due by `now`, oldest first."""
        answer = self._db.query(
            TableName=self._table, KeyConditionExpression="pk = :pk AND sk <= :now", Limit=limit,
            ExpressionAttributeValues=encode_item({":pk": DUE_PK, ":now": timestamp(now) + "~"}))
        return [DueMarker(item["sk"], item["job_id"], item["topic"]) for item in map(decode_item, answer["Items"])]

    def claim(self, marker: DueMarker) -> bool:
        """Take a due marker (delete it); False when another sweep took it first."""
        try:
            self._db.delete_item(TableName=self._table, Key=encode_item({"pk": DUE_PK, "sk": marker.sk}),
                                 ConditionExpression="attribute_exists(pk)")
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True
