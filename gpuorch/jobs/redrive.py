"""The dead-letter queue for operators: each message with its reason, and redrive of those that can still run.

A failed record never moves back, so a redriven job is a new job: a new record (same workflow and parameters,
its id derived from the old one's), a new message on the GPU queue, both records linked (`redrive_of`,
`redriven_as`), then the dead letter deleted. Run twice, or killed midway, it resubmits nothing twice: the new
id is fixed, the record is created conditionally, and once the old record is linked only the deletion is left.
Killed between publishing and linking, a rerun publishes the same job id again, which the GPU worker treats as
a redelivery of one job (its record and its ComfyUI prompt are shared).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpuorch.errors import Conflict
from gpuorch.jobs import states
from gpuorch.jobs.deadletters import DeadLetter, dead_letter_reason, read_dead_letter, receive_all, release
from gpuorch.jobs.messages import MessageRejected, TaskCall, check_task_message, decode_sqs_body, record_problem
from gpuorch.jobs.store import Job, TransitionRefused
from gpuorch.jobs.submission import JobSubmitter
from gpuorch.services import Services

log = logging.getLogger(__name__)

# Fixed forever: a redriven job's id is uuid5(REDRIVE_NAMESPACE, old job id), so every redrive of it agrees.
REDRIVE_NAMESPACE = uuid.UUID("6f0e7a52-3c55-4c59-9b7e-2f1d0c6a9e41")
# Messages read by a listing or a redrive stay hidden this long at most (they are released when it ends).
HOLD_S = 60
MAX_READ = 500
# Outcomes after which the dead letter is gone from the queue.
REMOVED = frozenset({"redriven", "deleted"})


def redrive_job_id(job_id: str) -> str:
    return str(uuid.uuid5(REDRIVE_NAMESPACE, job_id))


@dataclass(frozen=True)
class Assessed:
    """One dead letter, its job record and whether it can be redriven (`unfixable` says why not)."""

    letter: DeadLetter
    reason: str
    job: Job | None
    call: TaskCall | None
    unfixable: str | None

    def as_dict(self) -> dict[str, Any]:
        letter, job = self.letter, self.job
        return {
            "message_id": letter.message_id,
            "job_id": letter.job_id,
            "task": letter.task,
            "workflow": self.call.workflow if self.call else (job.workflow if job else None),
            "reason": self.reason,
            "source_message_id": letter.source_message_id,
            "rejected": letter.reason is not None,
            "receive_count": letter.receive_count,
            "job_status": job.status if job else None,
            "job_error": job.error if job else None,
            "redriven_as": job.redriven_as if job else None,
            "fixable": self.unfixable is None,
            "unfixable": self.unfixable,
        }


def assess(letter: DeadLetter, job: Job | None, *, task_workflows: Mapping[str, str | None], workflows,
           max_receive_count: int) -> Assessed:
    """Whether a dead letter can run if resubmitted: the worker's checks again (the catalogue may have changed),
    then its job record (present, not succeeded or cancelled)."""
    reason = dead_letter_reason(letter, max_receive_count)
    try:
        call = check_task_message(decode_sqs_body(letter.body), task_workflows, workflows)
    except MessageRejected as rejected:
        return Assessed(letter, reason, job, None, rejected.reason)
    unfixable = record_problem(call, job)
    if unfixable is None and job.status in (states.SUCCEEDED, states.CANCELLED):
        unfixable = f"job {job.job_id} is {job.status}: there is nothing to run again"
    return Assessed(letter, reason, job, call, unfixable)


def selected(item: Assessed, wanted: set[str]) -> bool:
    """Whether an operator's id names this dead letter: its message id, its job id, or the message it copies."""
    letter = item.letter
    return bool(wanted & {letter.message_id, letter.job_id, letter.source_message_id} - {None})


@dataclass(frozen=True)
class Outcome:
    id: str  # the id asked for (or the message id, for --all)
    action: str  # redriven | would-redrive | deleted | would-delete | left | not-found
    message_id: str | None = None
    job_id: str | None = None
    new_job_id: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class DeadLetters:
    """The GPU dead-letter queue, read and redriven through one Services (CLI and API alike); redriven jobs are
    resubmitted through `submitter` (None: this one only lists and deletes)."""

    def __init__(self, services: Services, task_workflows: Mapping[str, str | None],
                 submitter: JobSubmitter | None = None):
        self.services = services
        self.settings = services.settings
        self.task_workflows = task_workflows
        self.submitter = submitter

    @property
    def _url(self) -> str:
        return self.services.aws.queue_url(self.settings.gpu_dead_letter_queue)

    def _read(self, url: str) -> tuple[list[Assessed], list[dict[str, Any]]]:
        messages = receive_all(self.services.aws.sqs, url, visibility_s=HOLD_S, limit=MAX_READ)
        items = []
        for message in messages:
            letter = read_dead_letter(message)
            job = self.services.jobs.get(letter.job_id) if letter.job_id else None
            items.append(assess(letter, job, task_workflows=self.task_workflows, workflows=self.services.workflows,
                                max_receive_count=self.settings.max_receive_count))
        return items, messages

    def list(self) -> list[Assessed]:
        """Every message in the DLQ (up to MAX_READ), assessed; nothing is removed and nothing stays hidden."""
        url = self._url
        items, messages = [], []
        try:
            items, messages = self._read(url)
        finally:
            release(self.services.aws.sqs, url, [m["ReceiptHandle"] for m in messages])
        return items

    def redrive(self, ids: Iterable[str] = (), *, everything: bool = False, dry_run: bool = False) -> list[Outcome]:
        """Resubmit the fixable dead letters named by `ids` (or all of them); report and leave the rest."""
        return self._each(set(ids), lambda item: everything, lambda item, url: self._one(item, url, dry_run))

    def delete(self, ids: Iterable[str] = (), *, unfixable: bool = False, dry_run: bool = False) -> list[Outcome]:
        """Delete the dead letters named by `ids` (or every unfixable one); their jobs stay failed."""
        return self._each(set(ids), lambda item: unfixable and item.unfixable is not None,
                          lambda item, url: self._delete_one(item, url, dry_run))

    def _each(self, wanted: set[str], chosen: Callable[[Assessed], bool],
              act: Callable[[Assessed, str], Outcome]) -> list[Outcome]:
        """`act` on each dead letter named in `wanted` or `chosen`; then the others are released and the ids that
        named none reported."""
        url = self._url
        items: list[Assessed] = []
        messages: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        try:
            items, messages = self._read(url)
            for item in items:
                if chosen(item) or selected(item, wanted):
                    outcomes.append(act(item, url))
        finally:
            gone = {o.message_id for o in outcomes if o.action in REMOVED}
            release(self.services.aws.sqs, url, [m["ReceiptHandle"] for m in messages if m["MessageId"] not in gone])
        missing = sorted(i for i in wanted if not any(selected(item, {i}) for item in items))
        return outcomes + [Outcome(id=i, action="not-found", reason="no such message or job in the dead-letter "
                                   "queue (another reader may hold it for a moment: try again)") for i in missing]

    def _delete_one(self, item: Assessed, url: str, dry_run: bool) -> Outcome:
        letter = item.letter
        base = {"id": letter.message_id, "message_id": letter.message_id, "job_id": letter.job_id,
                "reason": item.unfixable or item.reason}
        if dry_run:
            return Outcome(**base, action="would-delete")
        if item.job is not None and not states.is_terminal(item.job.status):
            # Its message is about to go for good: the record must not wait for it.
            try:
                self.services.jobs.transition(item.job.job_id, states.FAILED,
                                              error=f"its message reached the dead-letter queue: {item.reason}")
            except TransitionRefused:
                pass  # finished meanwhile
        self.services.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=letter.receipt_handle)
        log.warning("dead letter %s deleted (job %s): %s", letter.message_id, letter.job_id, base["reason"],
                    extra={"job_id": letter.job_id})
        return Outcome(**base, action="deleted")

    def _one(self, item: Assessed, url: str, dry_run: bool) -> Outcome:
        letter = item.letter
        base = {"id": letter.message_id, "message_id": letter.message_id, "job_id": letter.job_id}
        if item.unfixable is not None:
            return Outcome(**base, action="left", reason=item.unfixable)
        new_id = item.job.redriven_as or redrive_job_id(item.job.job_id)
        if dry_run:
            return Outcome(**base, action="would-redrive", new_job_id=new_id)
        try:
            self._resubmit(item.job, new_id, item.reason)
        except RedriveRefused as refused:
            return Outcome(**base, action="left", reason=str(refused))
        self.services.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=letter.receipt_handle)
        log.info("job %s: redriven as job %s; dead letter %s deleted", letter.job_id, new_id, letter.message_id,
                 extra={"job_id": letter.job_id})
        return Outcome(**base, action="redriven", new_job_id=new_id)

    def _resubmit(self, old: Job, new_id: str, reason: str) -> None:
        jobs = self.services.jobs
        if old.status != states.FAILED:
            # The sweep has not reached it yet: its message is about to leave the DLQ, so fail it here.
            try:
                old = jobs.transition(old.job_id, states.FAILED,
                                      error=f"its message reached the dead-letter queue: {reason}")
            except TransitionRefused as refused:
                raise RedriveRefused(f"job {old.job_id} is {refused.current} now") from None
        if old.redriven_as == new_id:
            return  # linked by an earlier run, which had published first: only the deletion is left
        if self.submitter is None:
            raise RedriveRefused("no submitter: cannot queue jobs from here")
        self.submitter.resubmit(old, new_id)
        if not jobs.link_redrive(old.job_id, new_id):
            raise RedriveRefused(f"job {old.job_id} was redriven as another job already")


class RedriveRefused(Conflict):
    """A fixable dead letter that this redrive could not resubmit after all; it stays in the queue."""
