"""Marshmallow schemas of the API's queries and responses; the OpenAPI document is generated from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import marshmallow as ma
from flask import url_for

from gpuorch.jobs import states
from gpuorch.jobs.options import MAX_INLINE_BYTES, OUTPUT_FORMATS, PRIORITIES
from gpuorch.jobs.store import InvalidCursor, Job, decode_cursor
from gpuorch.webhooks.events import EVENTS, STATUS_EVENTS
from gpuorch.webhooks.schedule import STATES as DELIVERY_STATES
from lifecycle.facade import HOST_VERDICTS, INSTANCE_STATES, MAX_SPAN, MISSED_REPORTS, PHASES, Whereabouts, actual
from webapp.context import current
from webapp.health import COMPONENT_STATES

MAX_PAGE = 100
DEFAULT_PAGE = 20


def job_url(job_id: str) -> str:
    return url_for("jobs.JobView", job_id=job_id)


def _timestamp(description: str, *, nullable: bool = False) -> ma.fields.String:
    # Records keep ISO 8601 UTC strings (they sort as the GSI's range key); they are passed through as is.
    return ma.fields.String(
        required=not nullable, allow_none=nullable, metadata={"format": "date-time", "description": description}
    )


@dataclass(frozen=True)
class JobAnswer:
    """A job record and what the API adds when it answers: why a queued job is waiting, if known; where it is and
    when it should start and finish (while not over), at `now`."""

    job: Job
    waiting_reason: str | None = None
    where: Whereabouts | None = None
    now: datetime | None = None


class JobLinksSchema(ma.Schema):
    self = ma.fields.String(required=True, metadata={"description": "This job's URL."})


class _LinkedJobSchema(ma.Schema):
    """Dumps a Job record (or a JobAnswer) together with its links."""

    links = ma.fields.Nested(JobLinksSchema, required=True)

    @ma.pre_dump
    def _add_links(self, answer: Job | JobAnswer, **_: Any) -> dict[str, Any]:
        if not isinstance(answer, JobAnswer):
            answer = JobAnswer(answer)
        job, where = answer.job, answer.where
        # Output URLs are signed for this answer: a stored one would expire while its record lives on.
        outputs = [current().outputs.link(output) for output in job.outputs]
        return {
            **dataclasses.asdict(job),
            "outputs": outputs,
            "links": {"self": job_url(job.job_id)},
            "waiting_reason": answer.waiting_reason or (where.reason if where and where.start_in_s is None else None),
            "phase": where.phase if where else None,
            "queue_position": where.queue_position if where else None,
            "eta": where.eta(answer.now) if where and answer.now else None,
            "actual": actual(job.estimate, gpu_seconds=job.gpu_seconds, started_at=job.started_at,
                             finished_at=job.finished_at) if states.is_terminal(job.status) else None,
        }


class JobAcceptedSchema(_LinkedJobSchema):
    """The answer to an accepted submission: poll `links.self` (also the Location header) for the outcome."""

    job_id = ma.fields.String(required=True)
    status = ma.fields.String(
        required=True,
        metadata={"enum": list(states.STATUSES),
                  "description": "queued; or, answering a request its Idempotency-Key had accepted before, the status "
                                 "that job has now."},
    )
    workflow = ma.fields.String(required=True)
    estimate = ma.fields.Nested("EstimateSchema", allow_none=True, metadata={
        "description": "The price quote and when it should start and finish, from the GPU's state now: usd_warm on "
                       "a running GPU, usd_cold if one must start for it. Null when the lifecycle could not be "
                       "read."})


class OutputSchema(ma.Schema):
    uri = ma.fields.String(required=True, metadata={"description": "s3:// URI of the stored file."})
    filename = ma.fields.String(required=True)
    node_id = ma.fields.String(required=True, metadata={"description": "ComfyUI node that produced it."})
    media = ma.fields.String(required=True, metadata={"description": "ComfyUI media kind, e.g. images."})
    content_type = ma.fields.String(required=True)
    bytes = ma.fields.Integer(required=True)
    url = ma.fields.String(
        required=True,
        metadata={
            "format": "uri",
            "description": "Presigned HTTPS GET of the file, signed for this answer (never stored): ask for the "
            "job again for a fresh one.",
        },
    )
    url_expires_at = _timestamp("Until when url works (GPUORCH_OUTPUT_URL_SECONDS after the answer).")
    inline_base64 = ma.fields.String(
        metadata={"format": "byte", "description": "The file itself, base64: present when the job asked for its "
                  f"outputs inline (output.inline) and they fit the record ({MAX_INLINE_BYTES} bytes together)."},
    )


class OutputOptionsSchema(ma.Schema):
    format = ma.fields.String(required=True, metadata={"enum": list(OUTPUT_FORMATS)})
    quality = ma.fields.Integer(allow_none=True, metadata={"description": "For jpeg and webp; null for png."})
    inline = ma.fields.Boolean(required=True)


class EtaSchema(ma.Schema):
    start_in_s = ma.fields.Float(required=True, metadata={"description": "Seconds from this answer until it should "
                                                                          "start on the GPU (0 once running)."})
    finish_in_s = ma.fields.Float(required=True, metadata={"description": "Seconds until it should finish."})
    start_by = _timestamp("When it should start.")
    finish_by = _timestamp("When it should finish.")


class EstimateSchema(ma.Schema):
    """What the job was expected to take and cost when it was submitted."""

    gpu_seconds = ma.fields.Float(required=True, metadata={"description": "ComfyUI execution seconds: the median of "
                                                                          "the workflow's recent jobs."})
    run_seconds = ma.fields.Float(required=True, metadata={"description": "Seconds on the GPU worker, all told."})
    hourly_usd = ma.fields.Float(required=True, metadata={"description": "The GPU instance's price an hour."})
    usd_warm = ma.fields.Float(required=True, metadata={"description": "Dollars on a running GPU: its GPU seconds."})
    usd_cold = ma.fields.Float(required=True, metadata={
        "description": "Dollars if a GPU must start for it: with the start's billed seconds (at least 60)."})
    phase = ma.fields.String(required=True, metadata={"enum": list(PHASES)})
    queue_position = ma.fields.Integer(required=True, allow_none=True)
    start_by = _timestamp("When it was expected to start.", nullable=True)
    finish_by = _timestamp("When it was expected to finish.", nullable=True)
    observed_jobs = ma.fields.Integer(required=True, metadata={
        "description": "Finished jobs of the workflow its times come from (0: the defaults)."})


class ActualSchema(ma.Schema):
    """What an ended job took and cost, beside its estimate."""

    gpu_seconds = ma.fields.Float(required=True, allow_none=True)
    usd = ma.fields.Float(required=True, allow_none=True, metadata={"description": "Its GPU seconds at the "
                                                                                   "estimate's price."})
    started_at = _timestamp("When it started.", nullable=True)
    finished_at = _timestamp("When it ended.", nullable=True)
    finish_error_s = ma.fields.Float(required=True, allow_none=True, metadata={
        "description": "Its end less the estimated finish, seconds (positive: later than estimated)."})


class JobSchema(_LinkedJobSchema):
    """A job record: the user's truth about one job."""

    job_id = ma.fields.String(required=True)
    workflow = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": list(states.STATUSES)})
    progress = ma.fields.Integer(required=True, metadata={"minimum": 0, "maximum": 100})
    node = ma.fields.String(allow_none=True, metadata={"description": "ComfyUI node running now, if known."})
    created_at = _timestamp("When the job was accepted.")
    updated_at = _timestamp("Last change to the record.")
    started_at = _timestamp("When a GPU worker first started it.", nullable=True)
    finished_at = _timestamp("When it succeeded, failed, was cancelled or expired.", nullable=True)
    attempts = ma.fields.Integer(required=True, metadata={"description": "Times a GPU worker started it."})
    params = ma.fields.Dict(required=True, metadata={"description": "The validated request parameters."})
    outputs = ma.fields.List(ma.fields.Nested(OutputSchema), required=True)
    output = ma.fields.Nested(
        OutputOptionsSchema, allow_none=True,
        metadata={"description": "How its image outputs are stored, as it asked (the request's output)."},
    )
    priority = ma.fields.String(
        required=True, metadata={"enum": list(PRIORITIES),
                                 "description": "low: it starts no GPU by itself, and runs after the normal jobs."},
    )
    deadline = _timestamp("Not started by then, it ends expired (never runs, costs nothing).", nullable=True)
    batch_id = ma.fields.String(allow_none=True, metadata={"description": "The batch it was submitted in, if any."})
    error = ma.fields.String(allow_none=True, metadata={"description": "Why the job failed, or expired."})
    source = ma.fields.String(required=True, metadata={"description": "Who submitted it: api or python."})
    owner = ma.fields.String(
        allow_none=True,
        metadata={"description": "Owner of the API key that submitted it (GPUORCH_SUBMIT_OWNER for python); null "
                                 "for a job no owner's key sees (only operator keys do)."},
    )
    gpu_seconds = ma.fields.Float(
        allow_none=True, metadata={"description": "ComfyUI's execution time of the job's prompt, once it succeeded."}
    )
    redrive_of = ma.fields.String(
        allow_none=True, metadata={"description": "The dead-lettered job this one was resubmitted from (a redrive)."}
    )
    redriven_as = ma.fields.String(
        allow_none=True, metadata={"description": "The job this dead-lettered one was resubmitted as (a redrive)."}
    )
    phase = ma.fields.String(allow_none=True, metadata={"enum": [*PHASES, None], "description": (
        "Where a job not over is: waiting_for_gpu (no GPU instance runs: one starts, a cold start away; or none may, "
        "and waiting_reason says why), gpu_starting (an instance is booting), queued (a GPU is ready; "
        "queue_position jobs are ahead), running. Null once over.")})
    queue_position = ma.fields.Integer(allow_none=True, metadata={
        "description": "Jobs queued ahead of it (0: next); null unless queued."})
    eta = ma.fields.Nested(EtaSchema, allow_none=True, metadata={
        "description": "When it should start and finish, from the GPU's state, the measured cold start and the "
                       "workflow's observed times; null once over, or when no GPU may start."})
    estimate = ma.fields.Nested(EstimateSchema, allow_none=True, metadata={
        "description": "What it was expected to take and cost at submission (REST submissions)."})
    actual = ma.fields.Nested(ActualSchema, allow_none=True, metadata={
        "description": "Once over: what it took and cost, beside the estimate; null without an estimate."})
    webhook = ma.fields.Nested("WebhookSubscriptionSchema", allow_none=True, metadata={
        "description": "Where its events are POSTed (GET .../deliveries shows each one); null: nowhere."})
    waiting_reason = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "Why a queued job is waiting: the last GPU lifecycle check could not start a GPU (e.g. "
            "the monthly budget would be passed). The job stays queued and runs once a start is allowed. A "
            "low-priority job says that it waits for a GPU that is up anyway, or behind the normal jobs on the one "
            "that is. Null when that check started or kept a GPU, and for jobs that are not queued."
        },
    )


class BatchLinksSchema(ma.Schema):
    self = ma.fields.String(required=True, metadata={"description": "This batch's URL."})
    cancel = ma.fields.String(required=True, metadata={"description": "POST here to cancel its unfinished items."})


class BatchSchema(ma.Schema):
    """A batch: how many of its items are in each status, and each item's job record, in the order given."""

    batch_id = ma.fields.String(required=True)
    created_at = _timestamp("When the batch was accepted.")
    owner = ma.fields.String(allow_none=True, metadata={"description": "Owner of the API key that submitted it."})
    source = ma.fields.String(required=True, metadata={"description": "Who submitted it: api or python."})
    total = ma.fields.Integer(required=True, metadata={"description": "How many items it has."})
    counts = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Integer(), required=True,
        metadata={"description": "How many items are in each status (every status named)."},
    )
    finished = ma.fields.Boolean(required=True, metadata={"description": "Whether every item has finished."})
    items = ma.fields.List(ma.fields.Nested(JobSchema), required=True,
                           metadata={"description": "Each item's job record, in the order the items were given."})
    links = ma.fields.Nested(BatchLinksSchema, required=True)


class WebhookSubscriptionSchema(ma.Schema):
    url = ma.fields.String(required=True, metadata={"description": "Where the job's events are POSTed."})
    events = ma.fields.List(ma.fields.String(metadata={"enum": list(EVENTS)}), required=True)


class DeliveryAttemptSchema(ma.Schema):
    at = ma.fields.String(required=True, metadata={"format": "date-time"})
    status_code = ma.fields.Integer(required=True, allow_none=True, metadata={
        "description": "The receiver's answer; null: none came (refused address, no connection, timeout)."})
    error = ma.fields.String(required=True, allow_none=True, metadata={"description": "Why the try failed; null: "
                                                                                      "it was delivered (2xx)."})
    duration_ms = ma.fields.Float(required=True)


class DeliverySchema(ma.Schema):
    """One webhook delivery of a job: an event, its tries, and what comes next."""

    topic = ma.fields.String(required=True, metadata={
        "description": "The event, and for progress its percentage (job.progress#042)."})
    event = ma.fields.String(required=True, metadata={"enum": list(EVENTS)})
    url = ma.fields.String(required=True)
    message_id = ma.fields.String(required=True, metadata={
        "description": "The webhook-id header: the same on every try and resend, so a receiver drops repeats."})
    state = ma.fields.String(required=True, metadata={"enum": list(DELIVERY_STATES), "description": (
        "pending: tried again at next_try_at (or being tried); delivered: a try was answered 2xx; given_up: every "
        "try of the schedule failed (a resend starts a new round).")})
    created_at = _timestamp("When the event was first announced.")
    next_try_at = _timestamp("When it is tried again; null unless pending.", nullable=True)
    attempts = ma.fields.List(ma.fields.Nested(DeliveryAttemptSchema), required=True)


class DeliveryListSchema(ma.Schema):
    deliveries = ma.fields.List(ma.fields.Nested(DeliverySchema), required=True)


class ResendSchema(ma.Schema):
    event = ma.fields.String(validate=ma.validate.OneOf(list(STATUS_EVENTS.values())), metadata={
        "description": "The event to deliver again. Default: the job's latest status event delivered or tried."})


class ResendAcceptedSchema(ma.Schema):
    job_id = ma.fields.String(required=True)
    topic = ma.fields.String(required=True)
    url = ma.fields.String(required=True)


# The longest a request waits for a job (GET ?wait=, Prefer: wait=): a minute, well inside proxies' idle limits.
MAX_WAIT_S = 60


class JobQuerySchema(ma.Schema):
    wait = ma.fields.Float(
        load_default=0.0, validate=ma.validate.Range(min=0, max=MAX_WAIT_S),
        metadata={"description": f"Seconds to wait for the job to end before answering (at most {MAX_WAIT_S}); the "
                                 "answer comes as soon as it is over. 0: at once."})


class JobListQuerySchema(ma.Schema):
    status = ma.fields.String(
        validate=ma.validate.OneOf(states.STATUSES), metadata={"description": "Only jobs in this status."}
    )
    limit = ma.fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=ma.validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Page size, 1-{MAX_PAGE}."},
    )
    cursor = ma.fields.String(metadata={"description": "next_cursor of the previous page."})

    @ma.validates("cursor")
    def _check_cursor(self, value: str, **_: Any) -> None:
        try:
            decode_cursor(value)
        except InvalidCursor as exc:
            raise ma.ValidationError(str(exc)) from None


class JobListSchema(ma.Schema):
    """One page of jobs, newest first."""

    jobs = ma.fields.List(ma.fields.Nested(JobSchema), required=True)
    next_cursor = ma.fields.String(
        allow_none=True, required=True, metadata={"description": "Pass as cursor for the next page; null on the last."}
    )
    links = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.String(), metadata={"description": "next: the next page, if any."}
    )


class WorkflowInfoSchema(ma.Schema):
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    submit_url = ma.fields.String(required=True, metadata={"description": "POST a request here."})


class WorkflowSchema(WorkflowInfoSchema):
    """One workflow: what it does, where to submit it, and the request body it takes."""

    request_schema = ma.fields.Dict(
        required=True,
        metadata={
            "description": "JSON Schema (2020-12) of the request body: for each parameter its type, constraints "
            "(enum, minimum, maximum, length, pattern), default and description; `required` lists the "
            "parameters that must be given."
        },
    )


class WorkflowListSchema(ma.Schema):
    workflows = ma.fields.List(ma.fields.Nested(WorkflowSchema), required=True)


class ServiceInfoSchema(ma.Schema):
    name = ma.fields.String(required=True)
    version = ma.fields.String(required=True)
    workflows = ma.fields.List(ma.fields.Nested(WorkflowInfoSchema), required=True)
    links = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)


class ComponentSchema(ma.Schema):
    status = ma.fields.String(
        required=True,
        metadata={
            "enum": list(COMPONENT_STATES),
            "description": "blocked: it works, but the GPU lifecycle refused to start a GPU (detail.blocked says "
            "why), or a GPU instance cannot serve and is held (gpu_instances: its verdict is refused); jobs are "
            "still accepted and wait. stale: no lifecycle check ran for {MISSED_REPORTS} of its "
            "intervals (gpu: detail.stale says so; is the control worker or beat down?), or a running GPU instance's "
            "worker or ComfyUI stopped reporting (gpu_instances); jobs are still accepted and wait. Only error makes "
            "the answer a 503.",
        },
    )
    latency_ms = ma.fields.Float(required=True)
    error = ma.fields.String(metadata={"description": "Why the check failed."})
    detail = ma.fields.Dict(metadata={"description": "What the check saw (names, counts, states)."})


def _nullable(field: type[ma.fields.Field], description: str, **metadata: Any) -> ma.fields.Field:
    return field(required=True, allow_none=True, metadata={"description": description, **metadata})


class WorkerBeatSchema(ma.Schema):
    heartbeat_at = ma.fields.String(required=True, metadata={"format": "date-time",
                                                             "description": "The GPU worker's last heartbeat."})
    age_s = ma.fields.Float(required=True, metadata={"description": "Seconds since that heartbeat."})
    ready = ma.fields.Boolean(required=True, metadata={"description": "false: the worker is shutting down."})
    running_jobs = ma.fields.Integer(required=True, metadata={"description": "Jobs it ran at that heartbeat."})


class ComfyuiBeatSchema(ma.Schema):
    answered_at = ma.fields.String(required=True, metadata={
        "format": "date-time", "description": "When ComfyUI last answered the worker's heartbeat probe (GET /queue)."})
    age_s = ma.fields.Float(required=True, metadata={"description": "Seconds since then."})


class RefusalSchema(ma.Schema):
    at = ma.fields.String(required=True, metadata={"format": "date-time", "description": "When it was recorded."})
    source = ma.fields.String(required=True, metadata={"enum": ["worker", "lifecycle"], "description": (
        "worker: its GPU worker refused to start; lifecycle: it was not ready within the boot grace.")})
    reasons = ma.fields.List(ma.fields.String(), required=True)
    fingerprint = _nullable(ma.fields.String, "SHA-256 of what the worker checked against (settings, workflows, "
                                              "ComfyUI's catalogue); null for a lifecycle refusal.")
    held = ma.fields.Boolean(required=True, metadata={"description": (
        "It holds the instance (the lifecycle does not start it); false: it no longer does (the configuration "
        "changed since, so the instance may start again) or not yet (the next lifecycle check decides).")})


class GpuInstanceHealthSchema(ma.Schema):
    instance_id = ma.fields.String(required=True)
    state = _nullable(ma.fields.String, "EC2 state at the last lifecycle check; null: that check did not list it.",
                      enum=[*INSTANCE_STATES, None])
    instance_type = _nullable(ma.fields.String, "EC2 instance type.")
    market = _nullable(ma.fields.String, "on-demand or spot; null: the last lifecycle check did not list it.",
                       enum=["on-demand", "spot", None])
    launched_at = _nullable(ma.fields.String, "Its latest start (EC2's LaunchTime).", format="date-time")
    health = ma.fields.String(required=True, metadata={"enum": list(HOST_VERDICTS), "description": (
        "off: stopped or stopping, the normal state of an idle GPU. starting: pending, or running for less than "
        "GPUORCH_HEALTH_BOOT_GRACE_SECONDS while its worker has not reported yet. ok: its worker and ComfyUI "
        "reported within stale_after_s. stopping: its worker is shutting down. interrupted: its worker reported "
        "EC2's spot interruption notice (reason says when EC2 stops it); it takes no job, and the lifecycle starts "
        "a replacement. stale: running, but its worker's "
        "heartbeat, or ComfyUI's last answer, is older than stale_after_s (or missing after the boot grace). "
        "unknown: a worker reports on an instance the last lifecycle check did not list. refused: it cannot serve "
        "(its worker refused to start, or it was not ready within the boot grace): the lifecycle stops it and "
        "does not start it again until its configuration changes or an operator starts it. interrupted: its worker "
        "reported EC2's spot interruption notice; EC2 stops it at the notice's time and a replacement starts.")})
    reason = _nullable(ma.fields.String, "Why it is stale, stopping, interrupted or refused.")
    worker = ma.fields.Nested(WorkerBeatSchema, required=True, allow_none=True,
                              metadata={"description": "Its GPU worker's last heartbeat; null: none unexpired."})
    comfyui = ma.fields.Nested(ComfyuiBeatSchema, required=True, allow_none=True,
                               metadata={"description": "When its ComfyUI last answered; null: never reported."})
    refusal = ma.fields.Nested(RefusalSchema, required=True, allow_none=True,
                               metadata={"description": "Why it last could not serve; null: nothing on record."})


class GpuInstancesDetailSchema(ma.Schema):
    checked_at = _nullable(ma.fields.String, "When the lifecycle check that read the instance states ran.",
                           format="date-time")
    stale_after_s = ma.fields.Float(required=True, metadata={
        "description": f"Heartbeats older than this are stale: {MISSED_REPORTS} x GPUORCH_HEARTBEAT_SECONDS, the "
                       "lifecycle's own limit."})
    instances = ma.fields.List(ma.fields.Nested(GpuInstanceHealthSchema), required=True)


class GpuInstancesComponentSchema(ComponentSchema):
    detail = ma.fields.Nested(GpuInstancesDetailSchema, metadata={"description": "Every GPU instance, with a verdict."})


class HealthComponentsSchema(ma.Schema):
    sqs = ma.fields.Nested(ComponentSchema, required=True, metadata={"description": "The GPU queue's depth."})
    dynamodb = ma.fields.Nested(ComponentSchema, required=True, metadata={"description": "The job table."})
    s3 = ma.fields.Nested(ComponentSchema, required=True, metadata={"description": "The job bucket."})
    gpu = ma.fields.Nested(ComponentSchema, required=True, metadata={
        "description": "The GPU lifecycle: its last check's time (checked_at), why it refused a start (blocked, or "
        "null), this month's GPU spend beside the budget (month_spend_usd, monthly_budget_usd), the markets (market: "
        "last_start {instance_id, market, at} and last_fallback {instance_id, instead_of, reason: spot_price, "
        "spot_refused or spot_interrupted, detail, at}, each null until there is one; next_start {instance_id, "
        "instance_type, market, hourly_usd}, the stopped (or stopping) instance a start would take next and its "
        "price, null when none is; market itself null before the first check), and, only when that check is older "
        "than 3 x GPUORCH_LIFECYCLE_CHECK_SECONDS (at least 60 s), why it is stale (stale)."})
    gpu_instances = ma.fields.Nested(GpuInstancesComponentSchema, required=True, metadata={
        "description": "Each GPU instance's state and its worker's and ComfyUI's last heartbeat. A stopped GPU is "
        "normal (off); a running one whose worker or ComfyUI stopped reporting is stale; one that cannot serve is "
        "refused, naming why, and makes the component blocked."})


class HealthSchema(ma.Schema):
    """Each component's state. status is ok (200) unless a component is in error (503); blocked and stale
    components leave it ok, since the API still accepts jobs."""

    status = ma.fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    components = ma.fields.Nested(HealthComponentsSchema, required=True)


_MOMENT = (
    "ISO 8601 date (2026-06-01) or date-time (2026-06-01T08:00:00Z; UTC when it names no offset). "
)


class CostQuerySchema(ma.Schema):
    from_ = ma.fields.String(
        data_key="from",
        metadata={
            "description": _MOMENT + "Start of the period; a date means its midnight UTC. Default: the start of "
            "the UTC month the period ends in."
        },
    )
    to = ma.fields.String(
        metadata={
            "description": _MOMENT + "End of the period (excluded); a date includes that whole day. Default: now. "
            f"At most {MAX_SPAN.days} days after from."
        },
    )
    by = ma.fields.String(
        validate=ma.validate.OneOf(["owner"]),
        metadata={"description": "owner: also each owner's part of the cost (chargeback)."},
    )
    compare = ma.fields.Boolean(load_default=False, metadata={
        "description": "Also what the period's jobs would have cost under the replaced rule, each fixed idle time, "
                       "the learning policy and per-second serverless, and the setting the history recommends."})


class CostPeriodSchema(ma.Schema):
    from_ = ma.fields.String(
        attribute="from", data_key="from", required=True,
        metadata={"format": "date-time", "description": "Start of the period (UTC)."},
    )
    to = ma.fields.String(required=True, metadata={"format": "date-time", "description": "End, excluded (UTC)."})


class MonthBudgetSchema(ma.Schema):
    month = ma.fields.String(required=True, metadata={"description": "The UTC month, e.g. 2026-06."})
    spend_usd = ma.fields.Float(required=True, metadata={"description": "GPU dollars spent so far this month."})
    budget_usd = ma.fields.Float(required=True, metadata={"description": "GPUORCH_MONTHLY_BUDGET_USD."})


def _share(what: str) -> ma.fields.Float:
    return ma.fields.Float(
        required=True, metadata={"minimum": 0, "maximum": 1, "description": f"Share of the billed time {what}."}
    )


class OwnerCostSchema(ma.Schema):
    """One owner's part of a period's cost: its jobs' GPU seconds and, in the same proportion, the boot and idle
    time around them."""

    owner = ma.fields.String(required=True, allow_none=True, metadata={
        "description": "The API key owner the jobs belong to; null for jobs submitted from Python without "
                       "GPUORCH_SUBMIT_OWNER."})
    jobs = ma.fields.Integer(required=True, metadata={"description": "Its jobs that ran on the GPU and finished."})
    gpu_seconds = ma.fields.Float(required=True, metadata={"description": "Their GPU (ComfyUI execution) seconds."})
    dollars = ma.fields.Float(required=True, metadata={
        "description": "The period's dollars times its share of the GPU seconds: busy time, boot and idle alike."})


class AlternativeSchema(ma.Schema):
    policy = ma.fields.String(required=True, metadata={"description": "replaced, idle <N> min, learned, serverless"})
    dollars = ma.fields.Float(required=True)
    x_actual = ma.fields.Float(required=True, allow_none=True, metadata={"description": "dollars / what was paid"})
    p95_wait_s = ma.fields.Float(required=True, metadata={"description": "95th-percentile wait for a GPU, seconds"})


class ComparisonSchema(ma.Schema):
    """The period's jobs replayed (their submission times and GPU seconds) under other ways of running the GPU."""

    jobs = ma.fields.Integer(required=True, metadata={"description": "Jobs that ran on the GPU, replayed."})
    dollars = ma.fields.Float(required=True, metadata={"description": "What the period's GPU time cost."})
    priced_as = ma.fields.String(required=True, metadata={"description": "The instance type and market replayed."})
    alternatives = ma.fields.List(ma.fields.Nested(AlternativeSchema), required=True)
    best_fixed_idle_s = ma.fields.Integer(required=True, allow_none=True)
    recommendation = ma.fields.String(required=True)


class FinishErrorSchema(ma.Schema):
    median = ma.fields.Float(required=True)
    p90 = ma.fields.Float(required=True)


class EstimateAccuracySchema(ma.Schema):
    jobs = ma.fields.Integer(required=True, metadata={"description": "Jobs with an estimate that ran on the GPU."})
    gpu_seconds_error_pct = ma.fields.Float(required=True, allow_none=True, metadata={
        "description": "Median of |actual - estimated| / actual GPU seconds, in percent (the warm dollars alike)."})
    finish_error_s = ma.fields.Nested(FinishErrorSchema, required=True, allow_none=True, metadata={
        "description": "Median and 90th percentile of |finish - estimated finish|, seconds."})
    finished_by_estimate = ma.fields.Float(required=True, allow_none=True, metadata={
        "description": "Share that finished no later than estimated."})


class CostReportSchema(ma.Schema):
    """What the GPU cost over a period: billed per second, at least 60 s per start, at each run's hourly price."""

    period = ma.fields.Nested(CostPeriodSchema, required=True)
    starts = ma.fields.Integer(required=True, metadata={"description": "GPU instance starts in the period."})
    gpu_hours = ma.fields.Float(required=True, metadata={"description": "Instance hours billed in the period."})
    dollars = ma.fields.Float(required=True, metadata={"description": "What those hours cost."})
    busy_share = _share("spent running jobs (ComfyUI's execution time)")
    idle_share = _share("spent waiting for work, and the 60 s minimum's top-ups")
    boot_share = _share(
        "spent starting: from a start to the first job that waited for it (estimated from the jobs; a start no "
        "finished job waited for counts as idle)"
    )
    jobs = ma.fields.Integer(required=True, metadata={"description": "Jobs that ran on the GPU and finished in the period."})
    cost_per_job = ma.fields.Float(
        required=True, allow_none=True, metadata={"description": "dollars / jobs; null without jobs."}
    )
    interruptions = ma.fields.Integer(required=True, metadata={
        "description": "Spot runs EC2 interrupted in the period (their time is billed and counted above as any "
                       "other's)."})
    budget = ma.fields.Nested(
        MonthBudgetSchema,
        required=True,
        allow_none=True,
        metadata={"description": "This month's spend beside GPUORCH_MONTHLY_BUDGET_USD; null when no budget is set."},
    )
    compare = ma.fields.Nested(ComparisonSchema, metadata={"description": "With compare=true."})
    estimates = ma.fields.Nested(EstimateAccuracySchema, required=True, metadata={
        "description": "How good the estimates given at submission were, for the period's jobs that ran on the GPU "
                       "(each record shows its own: estimate beside actual)."})
    owners = ma.fields.List(ma.fields.Nested(OwnerCostSchema), metadata={
        "description": "With by=owner: each owner's part of `dollars`, dearest first (they add up to it when any "
                       "job ran on the GPU)."})


class GpuInstanceSchema(ma.Schema):
    instance_id = ma.fields.String(required=True)
    state = ma.fields.String(required=True, metadata={"description": "EC2's state: pending, running, stopping, "
                                                                     "stopped, shutting-down."})
    instance_type = ma.fields.String(required=True)
    market = ma.fields.String(required=True, metadata={"enum": ["on-demand", "spot"]})
    launched_at = ma.fields.DateTime(allow_none=True, metadata={"description": "When it last started."})


class GpuPoolSchema(ma.Schema):
    pool = ma.fields.String(required=True, metadata={"description": "The pool's tag value (GPUORCH_GPU_POOL)."})
    instances = ma.fields.List(ma.fields.Nested(GpuInstanceSchema), required=True)


class GpuStartQuerySchema(ma.Schema):
    over_budget = ma.fields.Boolean(load_default=False, metadata={
        "description": "Start even when this month's GPU spend plus an hour would pass GPUORCH_MONTHLY_BUDGET_USD "
                       "(without it such a start is a 409 over_budget)."})


class GpuActionSchema(ma.Schema):
    instance_id = ma.fields.String(required=True)
    outcome = ma.fields.String(required=True, metadata={
        "description": "What the call did: started, stopping, already running, already stopped, pending, wait, ..."})
    state = ma.fields.String(required=True, metadata={"description": "The instance's state after the call."})
    released = _nullable(ma.fields.String, "A start only: the hold it lifted, as its refusal said it (the instance "
                                           "could not serve); null: it was not held.")
