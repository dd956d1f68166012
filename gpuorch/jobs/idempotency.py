"""Idempotent submission: an Idempotency-Key names one accepted job (or batch) per owner, claimed by a conditional
write in the control table, so a retry after a timeout or a 503, from any API process or host, never queues a
second one.

The claim is written before anything else, with the id the job will have. The request that wins the write submits
under that id; a request that loses it reads the claim: another request (its fingerprint differs) is refused, the
same one gets the job that the winner records (waited for a few seconds when both race). A claim whose submission
was refused is deleted, so a corrected retry may use the key; one whose submitter died before recording anything is
taken over after STALE_CLAIM_S, under the same id, which the job table's conditional create accepts only once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import Clock, timestamp, utc_now
from gpuorch.errors import AdmissionRefused, ParamsInvalid

log = logging.getLogger(__name__)

#: The request header, and how refusals name the field.
HEADER = "Idempotency-Key"
PARTITION = "idem#"
SORT_KEY = "claim"
# Printable ASCII without spaces at either end: what a client generates (a UUID, a hash, an order number).
_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")
MAX_KEY_LENGTH = 255
# Kept at least this long whatever the job records' own life (GPUORCH_JOB_TTL_DAYS, which is at least a day).
MIN_KEEP_S = 24 * 3600
# A claim with nothing recorded under it this long after it was made lost its submitter: a retry takes it over.
STALE_CLAIM_S = 60.0
# How long a request that lost the race waits for the winner's job before answering 409 (retry shortly).
RACE_WAIT_S = 5.0
RACE_POLL_S = 0.1

T = TypeVar("T")


class IdempotencyKeyReused(ParamsInvalid):
    """The key was used for another request (another workflow, parameters or options): refused, nothing queued."""

    def __init__(self, claim: "Claim"):
        self.claim = claim
        super().__init__({HEADER: [f"already used for a different request (its {claim.kind} {claim.resource_id}); "
                                   "send a new key for a new request"]},
                         f"{HEADER} already used for a different request")


class IdempotencyKeyInUse(AdmissionRefused):
    """The same request with the same key is being submitted right now by another call: retry in a moment."""

    def __init__(self, claim: "Claim"):
        self.claim = claim
        super().__init__(f"A request with this {HEADER} is still being submitted; retry shortly to get its "
                         f"{claim.kind}.", 1.0)


def key_problem(key: str) -> str | None:
    """Why `key` cannot be an idempotency key (None when it can)."""
    if not key:
        return "must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"at most {MAX_KEY_LENGTH} characters, not {len(key)}"
    if not _KEY.fullmatch(key):
        return "printable ASCII characters only, without spaces at either end"
    return None


def checked_key(key: str | None) -> str | None:
    """`key` when it is a valid idempotency key (None stays None); ParamsInvalid naming the header otherwise."""
    if key is None:
        return None
    problem = key_problem(key)
    if problem:
        raise ParamsInvalid({HEADER: [problem]})
    return key


def fingerprint(kind: str, request: Any) -> str:
    """The SHA-256 of a request as its canonical JSON; bytes (an uploaded image) count by their own SHA-256."""

    def plain(value: Any) -> Any:
        data = getattr(value, "data", None)
        if isinstance(data, (bytes, bytearray)):
            return {"$sha256": hashlib.sha256(data).hexdigest()}
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    text = json.dumps([kind, plain(request)], sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Claim:
    """An idempotency key's record: the request it was first used for, and the job (or batch) it accepted."""

    kind: str  # "job" or "batch"
    resource_id: str
    fingerprint: str
    claimed_at: str


class IdempotencyStore:
    """Claims in the control table, one item per (owner, key); the key itself is stored only as a hash."""

    def __init__(self, dynamodb_client, table: str, *, keep_s: int, clock: Clock = utc_now):
        self._db = dynamodb_client
        self._table = table
        self._keep_s = max(MIN_KEEP_S, keep_s)
        self._clock = clock

    @staticmethod
    def item_key(owner: str | None, key: str) -> dict[str, Any]:
        digest = hashlib.sha256(f"{owner or ''}\0{key}".encode()).hexdigest()
        return encode_item({"pk": PARTITION + digest, "sk": SORT_KEY})

    def claim(self, owner: str | None, key: str, claim: Claim) -> Claim:
        """Write `claim` unless a live one holds the key; returns the claim that holds it (this one, or the first)."""
        now = self._clock()
        item = {
            "kind": claim.kind, "resource_id": claim.resource_id, "fingerprint": claim.fingerprint,
            "claimed_at": claim.claimed_at, "expires_at": int((now + timedelta(seconds=self._keep_s)).timestamp()),
        }
        try:
            # An expired claim that DynamoDB's TTL has not removed yet holds nothing.
            self._db.put_item(
                TableName=self._table, Item={**self.item_key(owner, key), **encode_item(item)},
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues=encode_item({":now": int(now.timestamp())}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            held = exc.response.get("Item")
            return _claim(decode_item(held)) if held else (self.read(owner, key) or claim)
        return claim

    def read(self, owner: str | None, key: str) -> Claim | None:
        """The live claim on the key, if any."""
        item = self._db.get_item(TableName=self._table, Key=self.item_key(owner, key), ConsistentRead=True).get("Item")
        if item is None:
            return None
        data = decode_item(item)
        if int(data.get("expires_at", 0)) < int(self._clock().timestamp()):
            return None
        return _claim(data)

    def release(self, owner: str | None, key: str, claim: Claim) -> None:
        """Delete the claim, if it is still this one: its submission was refused, so the key names nothing."""
        try:
            self._db.delete_item(
                TableName=self._table, Key=self.item_key(owner, key),
                ConditionExpression="resource_id = :r",
                ExpressionAttributeValues=encode_item({":r": claim.resource_id}),
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise


def _claim(data: Mapping[str, Any]) -> Claim:
    return Claim(data["kind"], data["resource_id"], data["fingerprint"], data["claimed_at"])


@dataclass(frozen=True)
class Accepted(Generic[T]):
    """What a submission accepted, and whether it was an earlier request's (the key's replay)."""

    value: T
    replayed: bool = False


class OnceOnly:
    """Submits a request at most once per (owner, idempotency key), across processes and hosts."""

    def __init__(self, store: IdempotencyStore, *, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 race_wait_s: float = RACE_WAIT_S):
        self.store = store
        self._clock = clock
        self._sleep = sleep
        self._race_wait_s = race_wait_s

    def submit(self, owner: str | None, key: str, kind: str, print_: str, submit: Callable[[str], T],
               find: Callable[[str], T | None]) -> Accepted[T]:
        """`submit(id)` under a new id if the key is free; the key's earlier result (`find(id)`) if it was used for
        the same request (`print_`, its fingerprint); IdempotencyKeyReused if for another; IdempotencyKeyInUse when
        the earlier one is still being submitted after a short wait. `submit` must create its records
        conditionally on the id, so that taking over a stale claim can never accept twice."""
        started = self._clock()
        while True:
            mine = Claim(kind, str(uuid.uuid4()), print_, timestamp(self._clock()))
            held = self.store.claim(owner, key, mine)
            if held.fingerprint != print_ or held.kind != kind:
                raise IdempotencyKeyReused(held)
            if held.resource_id == mine.resource_id:
                return Accepted(self._submit(owner, key, held, submit))
            found = find(held.resource_id)
            if found is not None:
                log.info("%s %s: the same request again with its idempotency key; answered with it", kind,
                         held.resource_id)
                return Accepted(found, replayed=True)
            if self._age_s(held) >= STALE_CLAIM_S:
                log.warning("%s %s: its idempotency claim has nothing recorded after %.0f s; submitting it again",
                            kind, held.resource_id, STALE_CLAIM_S)
                return Accepted(self._submit(owner, key, held, submit, taken_over=find))
            if (self._clock() - started).total_seconds() >= self._race_wait_s:
                raise IdempotencyKeyInUse(held)
            self._sleep(RACE_POLL_S)
            # The winner may have been refused meanwhile (its claim released): the loop claims the key again.

    def earlier(self, owner: str | None, key: str) -> Claim | None:
        """The claim already on the key (a retry, which the limits need not count again), if any."""
        return self.store.read(owner, key)

    def _submit(self, owner: str | None, key: str, claim: Claim, submit: Callable[[str], T],
                taken_over: Callable[[str], T | None] | None = None) -> T:
        try:
            return submit(claim.resource_id)
        except Exception:
            if taken_over is not None and (found := taken_over(claim.resource_id)) is not None:
                return found  # the original submitter was slow, not dead, and recorded it meanwhile
            self.store.release(owner, key, claim)
            raise

    def _age_s(self, claim: Claim) -> float:
        return (self._clock() - datetime.fromisoformat(claim.claimed_at.replace("Z", "+00:00"))).total_seconds()
