"""A lease in the DynamoDB control table, so that one lifecycle check runs at a time across processes."""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import Clock, timestamp, utc_now
from gpuorch.errors import Conflict

log = logging.getLogger(__name__)

LOCK_PK = "lock"


class LeaseBusy(Conflict):
    """Another owner holds the lease: raised by `with lease:`; the caller skips its turn."""


def default_owner() -> str:
    """An owner name unique to this process and call: host, pid, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def epoch(moment: datetime) -> Decimal:
    """Seconds since the epoch to the millisecond, as DynamoDB compares numbers."""
    return Decimal(f"{moment.timestamp():.3f}")


class Lease:
    """A named lease (pk="lock", sk=name) held by one owner until it is released or `ttl_s` pass.

    `acquire` succeeds when nobody holds the lease, when the holder's lease expired, or when this owner
    already holds it (which extends it); so an owner name must be unique to each holder. The expiry is
    checked in the write's condition, not left to DynamoDB's TTL deletion, which can lag by hours.
    """

    def __init__(self, dynamodb_client, table: str, name: str, *, owner: str, ttl_s: float, clock: Clock = utc_now):
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        if not owner:
            raise ValueError("a lease needs an owner name")
        self._db = dynamodb_client
        self._table = table
        self.name = name
        self.owner = owner
        self.ttl_s = ttl_s
        self._clock = clock

    def _key(self) -> dict:
        return encode_item({"pk": LOCK_PK, "sk": self.name})

    def acquire(self) -> bool:
        """Take (or extend) the lease; False when another owner holds an unexpired one."""
        now = self._clock()
        # Whole seconds for DynamoDB's TTL; rounding up keeps the lease at least ttl_s long.
        expires_at = math.ceil((now + timedelta(seconds=self.ttl_s)).timestamp())
        try:
            self._db.put_item(
                TableName=self._table,
                Item={**self._key(), **encode_item({"owner": self.owner, "acquired_at": timestamp(now),
                                                    "expires_at": expires_at})},
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=encode_item({":now": epoch(now), ":owner": self.owner}),
            )
        except ClientError as exc:
            if condition_failed(exc):
                log.debug("lease %s: held by another owner; %s skips", self.name, self.owner)
                return False
            raise
        log.debug("lease %s: held by %s until %s", self.name, self.owner, expires_at)
        return True

    def release(self) -> bool:
        """Give the lease up; False when it is no longer this owner's (it expired and was taken, or is gone)."""
        try:
            self._db.delete_item(
                TableName=self._table,
                Key=self._key(),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=encode_item({":owner": self.owner}),
            )
        except ClientError as exc:
            if condition_failed(exc):
                log.warning("lease %s: %s no longer held it at release (it expired)", self.name, self.owner)
                return False
            raise
        return True

    def holder(self) -> str | None:
        """The owner of the unexpired lease, if any (for logs and operators)."""
        item = self._db.get_item(TableName=self._table, Key=self._key(), ConsistentRead=True).get("Item")
        if item is None:
            return None
        lease = decode_item(item)
        return lease["owner"] if lease["expires_at"] > epoch(self._clock()) else None

    def __enter__(self) -> "Lease":
        if not self.acquire():
            raise LeaseBusy(f"lease {self.name!r} is held by another owner")
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
