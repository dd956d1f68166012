"""Batch records in the control table (one item per batch: its owner and its items' job ids, in order), and a batch
read with its items' records."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import decode_item, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import Clock, utc_now
from gpuorch.jobs import states
from gpuorch.jobs.store import Job, TransitionRefused

PARTITION = "batch#"
SORT_KEY = "batch"


@dataclass(frozen=True)
class Batch:
    """One accepted batch: its items' job ids, in the order they were given."""

    batch_id: str
    owner: str | None
    source: str
    created_at: str
    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class BatchView:
    """A batch with its items' records as they are now."""

    batch: Batch
    jobs: tuple[Job, ...]

    @property
    def counts(self) -> dict[str, int]:
        """How many items are in each status (every status named, 0 included)."""
        found = Counter(job.status for job in self.jobs)
        return {status: found.get(status, 0) for status in states.STATUSES}

    @property
    def finished(self) -> bool:
        return all(states.is_terminal(job.status) for job in self.jobs)


def item_job_id(batch_id: str, index: int) -> str:
    """The job id of a batch's item: the same for the same batch and place, so that submitting a batch again under
    its id (an idempotency claim taken over) can create each job only once."""
    return str(uuid.uuid5(uuid.UUID(batch_id), str(index)))


class BatchStore:
    """Batch records in the control table, kept as long as their jobs."""

    def __init__(self, dynamodb_client, table: str, *, ttl_s: int, clock: Clock = utc_now):
        self._db, self._table, self._ttl_s, self._clock = dynamodb_client, table, ttl_s, clock

    @staticmethod
    def _key(batch_id: str) -> dict[str, Any]:
        return encode_item({"pk": PARTITION + batch_id, "sk": SORT_KEY})

    def create(self, batch: Batch) -> None:
        expires_at = int((self._clock() + timedelta(seconds=self._ttl_s)).timestamp())
        item = {"owner": batch.owner, "source": batch.source, "created_at": batch.created_at,
                "job_ids": list(batch.job_ids), "expires_at": expires_at}
        try:
            self._db.put_item(TableName=self._table, Item={**self._key(batch.batch_id), **encode_item(item)},
                              ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if condition_failed(exc):
                raise TransitionRefused(batch.batch_id, "batch", "existing") from None
            raise

    def get(self, batch_id: str) -> Batch | None:
        item = self._db.get_item(TableName=self._table, Key=self._key(batch_id), ConsistentRead=True).get("Item")
        if item is None:
            return None
        data = decode_item(item)
        return Batch(batch_id, data.get("owner"), data.get("source", "api"), data["created_at"],
                     tuple(data.get("job_ids", ())))

    def delete(self, batch_id: str) -> None:
        self._db.delete_item(TableName=self._table, Key=self._key(batch_id))
