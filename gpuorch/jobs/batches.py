"""Batches: up to MAX_BATCH_ITEMS ordinary job requests under one id, each item its own job, accepted whole (every
item recorded and queued) or refused whole (every bad item named, nothing stored, recorded or queued)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from gpuorch.clock import timestamp, utc_now
from gpuorch.errors import InputTooLarge, ParamsInvalid
from gpuorch.jobs import states
from gpuorch.jobs.batch_store import Batch, BatchStore, BatchView, item_job_id
from gpuorch.jobs.idempotency import Accepted, fingerprint
from gpuorch.jobs.store import Job, TransitionRefused
from gpuorch.jobs.submission import JobSubmitter, PreparedJob, discard_inputs, store_inputs

log = logging.getLogger(__name__)

#: The most items one batch holds: a batch's job ids live in one record, and its answer lists every item.
MAX_BATCH_ITEMS = 100
#: The key naming an item's workflow beside its request (a name no workflow parameter may take).
WORKFLOW = "workflow"
ITEMS = "items"


def count_items(items: Any) -> int:
    """How many items a batch has: ParamsInvalid, before anything else is read of them, when that is no batch."""
    if not isinstance(items, list) or not items:
        raise ParamsInvalid({ITEMS: ["a non-empty list of job requests, each with its workflow"]})
    if len(items) > MAX_BATCH_ITEMS:
        raise ParamsInvalid({ITEMS: [f"at most {MAX_BATCH_ITEMS} items in a batch, not {len(items)}"]})
    return len(items)


def _nested(index: int, errors: Mapping[str, Any]) -> dict[str, Any]:
    return {ITEMS: {index: dict(errors)}}


def _merge(into: dict[str, Any], errors: Mapping[str, Any]) -> None:
    into.setdefault(ITEMS, {}).update(errors[ITEMS])


class BatchSubmitter:
    """Accepts batches through the JobSubmitter's own checks, so that an item is exactly an ordinary job request."""

    def __init__(self, submitter: JobSubmitter, store: BatchStore):
        self.submitter = submitter
        self.store = store
        self.services = submitter.services

    def submit(self, items: Any, *, source: str, owner: str | None = None, batch_id: str | None = None) -> Batch:
        """Accept every item of `items` (each a job request with its `workflow`) as one batch, or none: ParamsInvalid
        (or InputTooLarge) names every bad item's fields as items.<index>.<field>."""
        batch_id = batch_id or str(uuid.uuid4())
        prepared = self.prepare(items, batch_id)
        stored: list[PreparedJob] = []
        jobs: list[Job] = []
        try:
            for item in prepared:
                store_inputs(self.services, item.job_id, item.staged)
                stored.append(item)
            for item in prepared:
                jobs.append(self.submitter.record(item, source=source, owner=owner, batch_id=batch_id))
            batch = Batch(batch_id, owner, source, timestamp(utc_now()), tuple(item.job_id for item in prepared))
            self.store.create(batch)
        except Exception:
            self._forget(jobs, stored)
            raise
        self._publish_all(batch, jobs, prepared)
        log.info("batch %s accepted: %d job(s) (from %s)", batch_id, len(jobs), source)
        return batch

    def prepare(self, items: Any, batch_id: str) -> list[PreparedJob]:
        """Every item checked as its own job request; ParamsInvalid naming the bad ones when any is."""
        count_items(items)
        prepared: list[PreparedJob] = []
        errors: dict[str, Any] = {}
        too_large: list[str] = []
        known = self.services.workflows
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                _merge(errors, _nested(index, {"_schema": ["a job request: an object naming its workflow"]}))
                continue
            request = dict(item)
            name = request.pop(WORKFLOW, None)
            if not isinstance(name, str) or name not in known:
                reason = f"one of {', '.join(known.names())}" if name is not None else "missing: name the workflow"
                _merge(errors, _nested(index, {WORKFLOW: [reason]}))
                continue
            try:
                prepared.append(self.submitter.prepare(name, request, item_job_id(batch_id, index)))
            except InputTooLarge as exc:
                _merge(errors, _nested(index, exc.errors))
                too_large += [f"{ITEMS}.{index}.{field}" for field in exc.too_large]
            except ParamsInvalid as exc:
                _merge(errors, _nested(index, exc.errors))
        if too_large:
            raise InputTooLarge(errors, too_large)
        if errors:
            raise ParamsInvalid(errors)
        return prepared

    def submit_once(self, idempotency_key: str | None, items: Any, *, source: str,
                    owner: str | None = None) -> Accepted[Batch]:
        """submit(), at most once per (owner, idempotency key), as JobSubmitter.submit_once does for one job."""
        if idempotency_key is None:
            return Accepted(self.submit(items, source=source, owner=owner))
        return self.submitter.once.submit(
            owner, idempotency_key, "batch", fingerprint("batch", items),
            submit=lambda batch_id: self.submit(items, source=source, owner=owner, batch_id=batch_id),
            find=self.store.get,
        )

    def view(self, batch: Batch) -> BatchView:
        """The batch with its items' records now, in its order (an item whose record expired is left out)."""
        found = self.services.jobs.get_many(list(batch.job_ids))
        return BatchView(batch, tuple(found[job_id] for job_id in batch.job_ids if job_id in found))

    def cancel(self, batch: Batch) -> BatchView:
        """Cancel every item not yet finished (each a conditional write, as one job's cancel)."""
        for job in self.view(batch).jobs:
            if states.is_terminal(job.status):
                continue
            try:
                self.services.jobs.transition(job.job_id, states.CANCELLED)
            except TransitionRefused:
                pass  # it finished meanwhile
        log.info("batch %s cancelled", batch.batch_id)
        return self.view(batch)

    def _publish_all(self, batch: Batch, jobs: Sequence[Job], prepared: Sequence[PreparedJob]) -> None:
        """Queue every item; should one fail, the batch is refused whole: the items queued already are cancelled
        (their workers drop them), the rest and the batch removed."""
        published: list[Job] = []
        try:
            for job in jobs:
                self.submitter.publish(job)
                published.append(job)
        except Exception:
            log.exception("batch %s: item %d of %d could not be queued; the batch is refused", batch.batch_id,
                          len(published) + 1, len(jobs))
            for job in published:
                try:
                    self.services.jobs.transition(job.job_id, states.CANCELLED,
                                                  error="its batch could not be queued whole")
                except TransitionRefused:
                    pass
            queued = {job.job_id for job in published}
            self._forget([job for job in jobs if job.job_id not in queued],
                         [item for item in prepared if item.job_id not in queued])
            self.store.delete(batch.batch_id)
            raise

    def _forget(self, jobs: Sequence[Job], stored: Sequence[PreparedJob]) -> None:
        for job in jobs:
            self.services.jobs.delete(job.job_id)
        for item in stored:
            discard_inputs(self.services, item.job_id, item.staged)
