"""API keys: random tokens, stored only as their SHA-256 in the key table, with owner, role and limits.

A token reads ``gpo_<key id>_<secret>``: the key id is public (listed, named when revoking) and finds the
record with one GetItem; the secret is 256 random bits. Only the hash of the whole token is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import all_items, decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import timestamp, utc_now
from gpuorch.errors import RequestRefused

PREFIX = "gpo_"
USER = "user"
OPERATOR = "operator"
ROLES = (USER, OPERATOR)
KEY_ID = re.compile(r"^[0-9a-f]{12}$")
OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UnknownKey(RequestRefused, LookupError):
    """No key has this id."""


class InvalidKey(RequestRefused, ValueError):
    """A key's fields are not acceptable (owner, role, limits); the message names the field."""


def token_hash(token: str) -> str:
    """SHA-256 of the token, hex. A fast hash is right here: the token carries 256 random bits, so there is no
    dictionary to try and no slow hash (bcrypt, argon2) would add anything but latency to every request."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(key id, token) for a new key."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> str | None:
    """The key id a token names; None when it is not shaped like one of ours."""
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX):].partition("_")
    if not sep or not secret or not KEY_ID.match(key_id):
        return None
    return key_id


@dataclass(frozen=True)
class ApiKey:
    """A key's record: never its token, only the token's hash."""

    key_id: str
    owner: str
    role: str
    name: str
    created_at: str
    key_hash: str
    revoked_at: str | None = None
    rate_per_minute: float | None = None
    burst: int | None = None
    # A cap on its owner's GPU spend this month, in dollars, for submissions with this key (0: none; None: the
    # deployment's GPUORCH_OWNER_MONTHLY_CAP_USD).
    monthly_cap_usd: float | None = None
    # The webhook its submissions get when they name none, and its events (None: every status change).
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] | None = None

    @property
    def operator(self) -> bool:
        return self.role == OPERATOR

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def public(self) -> dict[str, Any]:
        """What `gpuorch keys list` shows: everything but the hash."""
        return {"key_id": self.key_id, "owner": self.owner, "role": self.role, "name": self.name,
                "created_at": self.created_at, "revoked_at": self.revoked_at,
                "rate_per_minute": self.rate_per_minute, "burst": self.burst, "monthly_cap_usd": self.monthly_cap_usd,
                "webhook_url": self.webhook_url,
                "webhook_events": list(self.webhook_events) if self.webhook_events else None}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "ApiKey":
        record = decode_item(item)
        rate, burst, cap = record.get("rate_per_minute"), record.get("burst"), record.get("monthly_cap_usd")
        return cls(key_id=record.get("key_id"), owner=record.get("owner"), role=record.get("role"),
                   name=record.get("name") or "", created_at=record.get("created_at"), key_hash=record.get("key_hash"),
                   revoked_at=record.get("revoked_at"),
                   rate_per_minute=float(rate) if rate is not None else None,
                   burst=int(burst) if burst is not None else None,
                   monthly_cap_usd=float(cap) if cap is not None else None,
                   webhook_url=record.get("webhook_url"),
                   webhook_events=tuple(record["webhook_events"]) if record.get("webhook_events") else None)


def check_fields(owner: str, role: str, rate_per_minute: float | None, burst: int | None,
                 monthly_cap_usd: float | None = None) -> None:
    """Refuse fields a key cannot have, naming the field."""
    if not OWNER.match(owner or ""):
        raise InvalidKey("owner: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    if role not in ROLES:
        raise InvalidKey(f"role: one of {', '.join(ROLES)}")
    if rate_per_minute is not None and rate_per_minute < 0:
        raise InvalidKey("rate_per_minute: must not be negative (0: no limit)")
    if burst is not None and burst < 1:
        raise InvalidKey("burst: must be at least 1")
    if monthly_cap_usd is not None and not 0 <= monthly_cap_usd < float("inf"):
        raise InvalidKey("monthly_cap_usd: dollars, 0 or more (0: no cap)")


class KeyStore:
    """The key table (GPUORCH_KEY_TABLE), keyed by key id."""

    def __init__(self, dynamodb_client, table: str, *, clock: Callable[[], datetime] = utc_now):
        self._db = dynamodb_client
        self._table = table
        self._clock = clock

    def create(self, owner: str, *, role: str = USER, name: str = "", rate_per_minute: float | None = None,
               burst: int | None = None, monthly_cap_usd: float | None = None, webhook_url: str | None = None,
               webhook_events: tuple[str, ...] | None = None) -> tuple[ApiKey, str]:
        """A new key and its token; the token is returned once and never stored. The default webhook is stored as
        given: its caller checks it (gpuorch.webhooks.events.subscription)."""
        check_fields(owner, role, rate_per_minute, burst, monthly_cap_usd)
        key_id, token = new_token()
        key = ApiKey(key_id=key_id, owner=owner, role=role, name=name, created_at=timestamp(self._clock()),
                     key_hash=token_hash(token), rate_per_minute=rate_per_minute, burst=burst,
                     monthly_cap_usd=monthly_cap_usd, webhook_url=webhook_url,
                     webhook_events=tuple(webhook_events) if webhook_events else None)
        item: dict[str, Any] = {"key_id": key.key_id, "owner": key.owner, "role": key.role, "name": key.name,
                                "created_at": key.created_at, "key_hash": key.key_hash}
        if rate_per_minute is not None:
            item["rate_per_minute"] = float(rate_per_minute)
        if burst is not None:
            item["burst"] = int(burst)
        if monthly_cap_usd is not None:
            item["monthly_cap_usd"] = float(monthly_cap_usd)
        if webhook_url:
            item["webhook_url"] = webhook_url
            if webhook_events:
                item["webhook_events"] = list(webhook_events)
        # A 48-bit id colliding is as good as impossible; the condition makes it an error, not an overwrite.
        self._db.put_item(TableName=self._table, Item=encode_item(item),
                          ConditionExpression="attribute_not_exists(key_id)")
        return key, token

    def get(self, key_id: str) -> ApiKey | None:
        answer = self._db.get_item(TableName=self._table, Key=encode_item({"key_id": key_id}), ConsistentRead=True)
        return ApiKey.from_item(answer["Item"]) if "Item" in answer else None

    def verify(self, token: str) -> ApiKey | None:
        """The live key whose token this is; None for a malformed, unknown or revoked one."""
        key_id = parse_token(token)
        key = self.get(key_id) if key_id else None
        if key is None or key.revoked or not hmac.compare_digest(key.key_hash, token_hash(token)):
            return None
        return key

    def list(self) -> list[ApiKey]:
        """Every key, oldest first (the table holds a handful: a scan is the plain way)."""
        found = [ApiKey.from_item(item) for item in all_items(self._db, "scan", TableName=self._table)]
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    def set_webhook(self, key_id: str, url: str | None, events: tuple[str, ...] | None = None) -> ApiKey:
        """Set (or, with None, remove) the key's default webhook; UnknownKey for an id no key has. API processes
        use the new one within GPUORCH_KEY_CACHE_SECONDS."""
        if url:
            update = "SET webhook_url = :u" + (", webhook_events = :e" if events else " REMOVE webhook_events")
            values = {":u": url, **({":e": list(events)} if events else {})}
        else:
            update, values = "REMOVE webhook_url, webhook_events", {}
        try:
            answer = self._db.update_item(
                TableName=self._table, Key=encode_item({"key_id": key_id}), UpdateExpression=update,
                ConditionExpression="attribute_exists(key_id)", ReturnValues="ALL_NEW",
                **({"ExpressionAttributeValues": encode_item(values)} if values else {}))
        except ClientError as exc:
            if condition_failed(exc):
                raise UnknownKey(f"no key has the id {key_id!r}") from None
            raise
        return ApiKey.from_item(answer["Attributes"])

    def revoke(self, key_id: str) -> ApiKey:
        """Mark the key revoked (kept, so the list shows when); revoking twice keeps the first time."""
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=encode_item({"key_id": key_id}),
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(key_id)",
                ExpressionAttributeValues=encode_item({":now": timestamp(self._clock())}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise UnknownKey(f"no key has the id {key_id!r}") from None
            raise
        return ApiKey.from_item(answer["Attributes"])


class KeyCache:
    """Keys verified in the last `ttl_s` seconds, so a request costs no table read; a revocation bites within
    `ttl_s`. Only live keys are kept (an unknown token is looked up every time), at most `max_entries`."""

    def __init__(self, store: KeyStore, *, ttl_s: float, monotonic: Callable[[], float] = time.monotonic,
                 max_entries: int = 10_000):
        self._store = store
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, ApiKey]] = {}

    def verify(self, token: str) -> ApiKey | None:
        digest = token_hash(token)
        now = self._monotonic()
        with self._lock:
            hit = self._entries.get(digest)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        key = self._store.verify(token)
        with self._lock:
            if key is None or self._ttl <= 0:
                self._entries.pop(digest, None)
            else:
                if len(self._entries) >= self._max:
                    self._entries.pop(next(iter(self._entries)))  # the oldest inserted
                self._entries[digest] = (now, key)
        return key
