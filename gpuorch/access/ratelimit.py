"""The per-key submission rate limit, shared by every API process and host through the control table (GCRA).

The generic cell rate algorithm keeps one number per key, its theoretical arrival time (TAT): a request at
`now` is allowed when the TAT it would set lies no further than `burst` intervals ahead of `now`. One item
per key (pk `rate#<key id>`) is written with a condition on the value it replaces, so two processes deciding
at once cannot both spend the same allowance; the loser decides again on the fresh value.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.errors import AdmissionRefused, ParamsInvalid

log = logging.getLogger(__name__)

PARTITION = "rate#"
SORT_KEY = "gcra"
ATTEMPTS = 8
# An idle key's item is of no use once its TAT has passed; the table's TTL removes it a day later.
EXPIRY_S = 86400


@dataclass(frozen=True)
class Limit:
    per_minute: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.per_minute <= 0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    tat: float  # the TAT to store when allowed; the unchanged one when refused
    retry_after: float  # seconds until this request would be allowed; 0 when it is


def gcra(tat: float | None, now: float, limit: Limit, cost: int = 1) -> Decision:
    """Allow a request of `cost` submissions (a batch's items) at `now` against the stored TAT (None: the key has
    none yet), or say when it may come."""
    interval = 60.0 / limit.per_minute
    new_tat = max(tat if tat is not None else now, now) + cost * interval
    allowed_at = new_tat - limit.burst * interval
    if allowed_at > now:
        return Decision(False, tat if tat is not None else now, allowed_at - now)
    return Decision(True, new_tat, 0.0)


def retry_after_header(seconds: float) -> int:
    """Retry-After in whole seconds, rounded up, at least 1 (an HTTP client may take 0 as 'at once')."""
    return max(1, math.ceil(seconds))


class TooManyAtOnce(ParamsInvalid):
    """A batch of more items than the key may ever submit at once (its burst), or than the backlog may hold: never
    admitted as it is, whatever the wait."""


class RateLimited(AdmissionRefused):
    """The key has spent its allowance; `retry_after` (seconds) says when the next submission is allowed."""

    def __init__(self, key_id: str, limit: Limit, retry_after: float):
        self.key_id, self.limit = key_id, limit
        super().__init__(f"key {key_id}: over {limit.per_minute:g} submissions per minute (burst {limit.burst})",
                         retry_after)


class RateLimiter:
    """GCRA state in the control table; `clock` gives the wall-clock time in seconds (shared by every host)."""

    def __init__(self, dynamodb_client, table: str, *, clock: Callable[[], float]):
        self._db = dynamodb_client
        self._table = table
        self._clock = clock

    def _key(self, key_id: str) -> dict:
        return encode_item({"pk": PARTITION + key_id, "sk": SORT_KEY})

    def spend(self, key_id: str, limit: Limit, cost: int = 1) -> None:
        """Take `cost` submissions (one, or a batch's items) from the key's allowance; RateLimited when there is not
        that much left, TooManyAtOnce when there never can be (more than its burst).

        A key that is not in a burst has a TAT in the past: one conditional write decides. When that write is
        refused, DynamoDB returns the stored TAT with the refusal, and the decision is made on it and written
        with a condition on that value, so concurrent writers never both spend the same allowance.
        """
        if limit.unlimited:
            return
        if cost > limit.burst:
            raise TooManyAtOnce({"items": [f"{cost} items: more than this API key may submit at once (its burst of "
                                           f"{limit.burst}); send at most {limit.burst} at a time"]})
        seen: int | None | object = _UNREAD
        for _ in range(ATTEMPTS):
            now = self._clock()
            if seen is _UNREAD:
                decision = gcra(None, now, limit, cost)
                condition, values = "attribute_not_exists(pk) OR tat_ms <= :now", {":now": int(now * 1000)}
            else:
                decision = gcra(seen / 1000 if seen is not None else None, now, limit, cost)
                if not decision.allowed:
                    raise RateLimited(key_id, limit, decision.retry_after)
                condition, values = ("attribute_not_exists(pk)", {}) if seen is None else (
                    "tat_ms = :seen", {":seen": seen})
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item={**self._key(key_id), **encode_item({"tat_ms": math.ceil(decision.tat * 1000),
                                                              "expires_at": int(decision.tat) + EXPIRY_S})},
                    ConditionExpression=condition,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **({"ExpressionAttributeValues": encode_item(values)} if values else {}),
                )
                return
            except ClientError as exc:
                if not condition_failed(exc):
                    raise
                # In a burst, or another process spent from this key meanwhile: decide again on the stored TAT.
                seen = self._stored(key_id, exc.response.get("Item"))
        log.warning("key %s: rate limit state kept changing under %d attempts; refusing this one", key_id, ATTEMPTS)
        raise RateLimited(key_id, limit, 60.0 / limit.per_minute)

    def _stored(self, key_id: str, item: dict | None) -> int | None:
        """The stored TAT in ms: from the refused write's answer, or read when that carried none."""
        if item is None:
            item = self._db.get_item(TableName=self._table, Key=self._key(key_id), ConsistentRead=True).get("Item")
        return int(decode_item(item)["tat_ms"]) if item else None


_UNREAD = object()
