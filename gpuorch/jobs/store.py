"""The DynamoDB job table: create, read, list and conditionally move job records."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from botocore.exceptions import ClientError

from gpuorch.aws.dynamodb import all_items, all_pages, decode_item, encode, encode_item
from gpuorch.aws.failures import condition_failed
from gpuorch.clock import Clock, timestamp, utc_now
from gpuorch.errors import Conflict, RequestRefused
from gpuorch.jobs import states
from gpuorch.jobs.options import LOW, NORMAL, JobOptions, OutputOptions

log = logging.getLogger(__name__)

STATUS_INDEX = "status-created_at-index"
# Each API key's owner lists its own jobs through this index (jobs without an owner are not in it).
OWNER_INDEX = "owner-created_at-index"

class TransitionRefused(Conflict):
    """The record's status does not allow the requested move (a late or duplicate writer)."""

    def __init__(self, job_id: str, target: str, current: str | None):
        self.job_id, self.target, self.current = job_id, target, current
        super().__init__(f"job {job_id}: cannot move from {current} to {target}")


class InvalidCursor(RequestRefused, ValueError):
    """A list cursor that this service did not hand out."""


@dataclass(frozen=True)
class Job:
    job_id: str
    workflow: str
    status: str
    params: dict[str, Any]
    created_at: str
    updated_at: str
    progress: int = 0
    node: str | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    source: str = "api"
    gpu_seconds: float | None = None
    redrive_of: str | None = None  # the dead-lettered job this one was resubmitted from
    redriven_as: str | None = None  # the job this dead-lettered one was resubmitted as
    owner: str | None = None
    output: dict[str, Any] | None = None  # how its outputs are stored (gpuorch.jobs.options.OutputOptions)
    priority: str = NORMAL
    deadline: str | None = None  # not started by then, it expires
    batch_id: str | None = None  # the batch it was submitted in

    @property
    def options(self) -> JobOptions:
        deadline = datetime.fromisoformat(self.deadline.replace("Z", "+00:00")) if self.deadline else None
        return JobOptions(self.priority, deadline, OutputOptions.from_record(self.output))

    def overdue(self, now: datetime) -> bool:
        """Whether it is still queued past its deadline: it must expire, not start."""
        return self.status == states.QUEUED and self.deadline is not None and self.deadline <= timestamp(now)
    # Where its events are POSTed (gpuorch.webhooks.events.Subscription as a record), if anywhere.
    webhook: dict[str, Any] | None = None
    # What the API expected of it when it was submitted: GPU seconds, dollars warm and cold, start and finish.
    estimate: dict[str, Any] | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "Job":
        data = decode_item(item)
        return cls(
            job_id=data["task_id"],
            workflow=data["workflow"],
            status=data["status"],
            params=data.get("params", {}),
            created_at=data["created_at"],
            updated_at=data.get("updated_at", data["created_at"]),
            progress=int(data.get("progress", 0)),
            node=data.get("node"),
            attempts=int(data.get("attempts", 0)),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            outputs=data.get("outputs", []),
            error=data.get("error"),
            source=data.get("source", "api"),
            gpu_seconds=data.get("gpu_seconds"),
            redrive_of=data.get("redrive_of"),
            redriven_as=data.get("redriven_as"),
            owner=data.get("owner"),
            output=data.get("output"),
            priority=data.get("priority", NORMAL),
            deadline=data.get("deadline"),
            batch_id=data.get("batch_id"),
            webhook=data.get("webhook"),
            estimate=data.get("estimate"),
        )


def encode_cursor(created_at: str, job_id: str) -> str:
    raw = json.dumps([created_at, job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, job_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise InvalidCursor("cursor is not one this service handed out") from None
    if not isinstance(created_at, str) or not isinstance(job_id, str):
        raise InvalidCursor("cursor is not one this service handed out")
    return created_at, job_id


def newest_first(pages: list[list[Job]], limit: int) -> tuple[list[Job], bool]:
    """Merge per-status pages (each newest first, at most `limit` long) into one page; and whether more follow.

    A status whose page came back full may hold older records, so another page may follow.
    """
    merged = sorted((job for page in pages for job in page), key=lambda j: (j.created_at, j.job_id), reverse=True)
    more = len(merged) > limit or any(len(page) >= limit for page in pages)
    return merged[:limit], more


# What a listener is told a record came from.
STATUS_CHANGE = "status"
PROGRESS_CHANGE = "progress"

#: Told of every record a status change or a progress write just produced (and of an end announced again), with
#: which of the two it came from.
Listener = Callable[[Job, str], None]

# BatchGetItem reads at most this many keys a call.
BATCH_GET_MAX = 100


class JobStore:
    """Job records in the DynamoDB job table; every status change is a conditional write.

    `listener` hears of every record a status change or a progress write produced (gpuorch.webhooks queues its
    webhook deliveries from there); its failure is logged, never raised: the write stands.
    """

    def __init__(self, dynamodb_client, table: str, *, ttl_seconds: int, clock: Clock = utc_now,
                 listener: Listener | None = None):
        self._db = dynamodb_client
        self._table = table
        self._ttl = ttl_seconds
        self._clock = clock
        self._listener = listener

    def announce(self, job: Job, change: str = STATUS_CHANGE) -> None:
        """Tell the listener of `job` as it is: after a write, or again by a writer that finds it already ended
        (a redelivered message), so an announcement lost with a dying process is made once more."""
        if self._listener is None:
            return
        try:
            self._listener(job, change)
        except Exception:  # noqa: BLE001 - the record is written; what listens must not undo that
            log.exception("job %s: its change to %s was not announced", job.job_id, job.status,
                          extra={"job_id": job.job_id})

    def create(self, job_id: str, workflow: str, params: dict[str, Any], *, source: str,
               redrive_of: str | None = None, owner: str | None = None, options: JobOptions | None = None,
               batch_id: str | None = None, webhook: dict[str, Any] | None = None,
               estimate: dict[str, Any] | None = None) -> Job:
        """Write a new queued record; a second create with the same id is refused, not overwritten. A job
        without an owner is left out of the owner index (only operators see it)."""
        now = self._clock()
        stamp = timestamp(now)
        item = {
            "task_id": job_id,
            "workflow": workflow,
            "status": states.QUEUED,
            "params": params,
            "created_at": stamp,
            "updated_at": stamp,
            "progress": 0,
            "attempts": 0,
            "outputs": [],
            "source": source,
            "expires_at": int((now + timedelta(seconds=self._ttl)).timestamp()),
            **(options or JobOptions()).as_record(),
        }
        if redrive_of is not None:
            item["redrive_of"] = redrive_of
        if batch_id is not None:
            item["batch_id"] = batch_id
        if owner:
            item["owner"] = owner
        if webhook:
            item["webhook"] = webhook
        if estimate:
            item["estimate"] = estimate
        try:
            self._db.put_item(
                TableName=self._table,
                Item=encode_item(item),
                ConditionExpression="attribute_not_exists(task_id)",
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise TransitionRefused(job_id, states.QUEUED, "existing") from None
            raise
        return Job.from_item(encode_item(item))

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return encode_item({"task_id": job_id})

    def get(self, job_id: str, *, consistent: bool = True) -> Job | None:
        answer = self._db.get_item(
            TableName=self._table, Key=self._key(job_id), ConsistentRead=consistent
        )
        return Job.from_item(answer["Item"]) if "Item" in answer else None

    def get_many(self, job_ids: list[str]) -> dict[str, Job]:
        """The records of these jobs (consistently read, BATCH_GET_MAX keys a call); a missing one is left out."""
        found: dict[str, Job] = {}
        unique = list(dict.fromkeys(job_ids))
        for start in range(0, len(unique), BATCH_GET_MAX):
            request = {self._table: {"Keys": [self._key(j) for j in unique[start:start + BATCH_GET_MAX]],
                                     "ConsistentRead": True}}
            while request:
                answer = self._db.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    job = Job.from_item(item)
                    found[job.job_id] = job
                request = answer.get("UnprocessedKeys") or None
        return found

    def delete(self, job_id: str) -> None:
        """Remove a record that never reached the queue (its message could not be sent)."""
        self._db.delete_item(TableName=self._table, Key=self._key(job_id))

    def list(self, *, status: str | None, limit: int, cursor: str | None = None,
             owner: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first, optionally of one status; returns (jobs, next cursor).

        With an owner, that owner's jobs from the owner GSI (the status, if any, filtered there); without one,
        every job from the status GSI, each status merged.
        """
        after = decode_cursor(cursor) if cursor else None
        if owner is not None:
            jobs = self._query_index(self._owner_query(owner, status), limit + 1, after)
            more = len(jobs) > limit
            jobs = jobs[:limit]
        else:
            statuses = [status] if status else list(states.STATUSES)
            jobs, more = newest_first([self._query_status(s, limit, after) for s in statuses], limit)
        next_cursor = encode_cursor(jobs[-1].created_at, jobs[-1].job_id) if jobs and more else None
        return jobs, next_cursor

    def _index_query(self, index: str, attribute: str, value: str, *, created: str = "",
                     values: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """A query of `index` for the records whose `attribute` is `value`: `created` narrows their created_at (a
        key condition, e.g. "BETWEEN :c0 AND :c1"), `values` are the other expressions' values, and `options` go to
        the query as they are (FilterExpression, ScanIndexForward, ...)."""
        condition = f"#k = :k AND created_at {created}" if created else "#k = :k"
        return {"TableName": self._table, "IndexName": index, "KeyConditionExpression": condition,
                "ExpressionAttributeNames": {"#k": attribute},
                "ExpressionAttributeValues": encode_item({":k": value, **(values or {})}), **options}

    def _owner_query(self, owner: str, status: str | None) -> dict[str, Any]:
        query = self._index_query(OWNER_INDEX, "owner", owner, ScanIndexForward=False)
        if status:
            query["FilterExpression"] = "#s = :s"
            query["ExpressionAttributeNames"]["#s"] = "status"
            query["ExpressionAttributeValues"][":s"] = encode(status)
        return query

    def _query_status(self, status: str, limit: int, after: tuple[str, str] | None) -> list[Job]:
        """Up to `limit` records of one status older than `after`, newest first."""
        return self._query_index(self._index_query(STATUS_INDEX, "status", status, ScanIndexForward=False), limit,
                                 after)

    def _query_index(self, query: dict[str, Any], limit: int, after: tuple[str, str] | None) -> list[Job]:
        """Up to `limit` records of an index query older than `after`, newest first."""
        if after is not None:
            query["KeyConditionExpression"] += " AND created_at <= :c"
            query["ExpressionAttributeValues"][":c"] = encode(after[0])
        jobs: list[Job] = []
        # Pages of one more than needed: records sharing the cursor's timestamp are filtered out after.
        for item in all_items(self._db, "query", Limit=limit + 1, **query):
            job = Job.from_item(item)
            if after is None or (job.created_at, job.job_id) < after:
                jobs.append(job)
                if len(jobs) == limit:
                    break
        return jobs

    def overdue(self, now: datetime) -> list[Job]:
        """Queued jobs whose deadline has passed by `now` (through the status GSI), oldest first."""
        query = self._index_query(STATUS_INDEX, "status", states.QUEUED, values={":now": timestamp(now)},
                                  FilterExpression="deadline <= :now")
        return [Job.from_item(item) for item in all_items(self._db, "query", **query)]

    def count_startable(self, now: datetime) -> int:
        """Normal-priority jobs that may still take a GPU: queued ones not past their deadline, and running ones (a
        running job's message comes back to the queue when its worker dies). Counted through the status GSI."""
        count = 0
        for status in (states.QUEUED, states.RUNNING):
            query = self._index_query(
                STATUS_INDEX, "status", status, values={":low": LOW, ":now": timestamp(now)}, Select="COUNT",
                FilterExpression="(attribute_not_exists(priority) OR priority <> :low) AND "
                                 "(attribute_not_exists(deadline) OR deadline > :now)")
            count += sum(page.get("Count", 0) for page in all_pages(self._db, "query", **query))
        return count

    def oldest(self, status: str, limit: int) -> list[Job]:
        """Up to `limit` records of one status, oldest first (the queue's order, as near as SQS keeps one)."""
        query = self._index_query(STATUS_INDEX, "status", status, ScanIndexForward=True, Limit=limit)
        return [Job.from_item(item) for item in itertools.islice(all_items(self._db, "query", **query), limit)]

    def created_between(self, start: datetime, end: datetime) -> list[Job]:
        """Every job submitted in [start, end), whatever its status, oldest first (through the status GSI)."""
        found: list[Job] = []
        for status in states.STATUSES:
            query = self._index_query(STATUS_INDEX, "status", status, created="BETWEEN :c0 AND :c1",
                                      values={":c0": timestamp(start), ":c1": timestamp(end)})
            found.extend(job for job in map(Job.from_item, all_items(self._db, "query", **query))
                         if job.created_at < timestamp(end))
        return sorted(found, key=lambda job: (job.created_at, job.job_id))

    def finished_between(self, start: datetime, end: datetime, *, created_since: datetime) -> list[Job]:
        """Succeeded and failed jobs that finished in [start, end), oldest finish first.

        Found through the status GSI among the jobs created in [created_since, end): the index is keyed by
        creation, so `created_since` must reach back as far as a job can wait before it finishes.
        """
        found: list[Job] = []
        for status in (states.SUCCEEDED, states.FAILED):
            query = self._index_query(
                STATUS_INDEX, "status", status, created="BETWEEN :c0 AND :c1",
                values={":c0": timestamp(created_since), ":c1": timestamp(end), ":f0": timestamp(start),
                        ":f1": timestamp(end)},
                FilterExpression="finished_at >= :f0 AND finished_at < :f1")
            found.extend(map(Job.from_item, all_items(self._db, "query", **query)))
        return sorted(found, key=lambda job: (job.finished_at, job.job_id))

    def transition(self, job_id: str, target: str, **fields: Any) -> Job:
        """Move a record to `target` if its status allows it; refuses (TransitionRefused) otherwise."""
        allowed = sorted(states.allowed_from(target))
        now = timestamp(self._clock())
        updates: dict[str, Any] = {"status": target, "updated_at": now, **fields}
        if target == states.RUNNING:
            updates.setdefault("started_at", now)
        if states.is_terminal(target):
            updates["finished_at"] = now
            if target == states.SUCCEEDED:
                updates["progress"] = 100
        names = {f"#f{i}": name for i, name in enumerate(updates)}
        values = {f":v{i}": value for i, value in enumerate(updates.values())}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(updates)))
        if target == states.RUNNING:
            expression += " ADD attempts :one"
            values[":one"] = 1
        names["#status"] = "status"
        allowed_values = {f":a{i}": s for i, s in enumerate(allowed)}
        values.update(allowed_values)
        condition = "attribute_exists(task_id) AND #status IN (" + ", ".join(allowed_values) + ")"
        if target == states.RUNNING:
            # A queued job past its deadline never starts (it expires); one that started before it may run again.
            condition += " AND (#status = :running OR attribute_not_exists(deadline) OR deadline > :now)"
            values.update({":running": states.RUNNING, ":now": now})
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=encode_item(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                current = self.get(job_id)
                raise TransitionRefused(job_id, target, current.status if current else None) from None
            raise
        log.info("job %s -> %s", job_id, target, extra={"job_id": job_id})
        job = Job.from_item(answer["Attributes"])
        self.announce(job)
        return job

    def link_redrive(self, job_id: str, new_job_id: str) -> bool:
        """Record on a failed job the job it was resubmitted as; False if it names another one already.

        Written once: the status stays failed (it never moves back), only the link is added.
        """
        try:
            self._db.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression="SET redriven_as = :n, updated_at = :u",
                ConditionExpression="#s = :failed AND (attribute_not_exists(redriven_as) OR redriven_as = :n)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=encode_item({
                    ":n": new_job_id,
                    ":u": timestamp(self._clock()),
                    ":failed": states.FAILED,
                }),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def report_progress(self, job_id: str, progress: int, node: str | None) -> bool:
        """Record progress while running; never lowers it. False when the write was not applied."""
        try:
            answer = self._db.update_item(
                TableName=self._table,
                Key=self._key(job_id),
                UpdateExpression="SET progress = :p, #n = :n, updated_at = :u",
                ConditionExpression="#s = :running AND progress < :p",
                ExpressionAttributeNames={"#s": "status", "#n": "node"},
                ExpressionAttributeValues=encode_item({
                    ":p": int(progress),
                    ":n": node,
                    ":u": timestamp(self._clock()),
                    ":running": states.RUNNING,
                }),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        self.announce(Job.from_item(answer["Attributes"]), PROGRESS_CHANGE)
        return True
