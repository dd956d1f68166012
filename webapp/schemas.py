"""Marshmallow schemas of the API's queries and responses; the OpenAPI document is generated from them."""

from __future__ import annotations

import dataclasses
from typing import Any

import marshmallow as ma
from flask import url_for

from gpuorch.jobs import states
from gpuorch.jobs.store import InvalidCursor, Job, decode_cursor
from webapp.context import current

MAX_PAGE = 100
DEFAULT_PAGE = 20


def job_url(job_id: str) -> str:
    return url_for("jobs.JobView", job_id=job_id)


def _timestamp(description: str, *, nullable: bool = False) -> ma.fields.String:
    # Records keep ISO 8601 UTC strings (they sort as the GSI's range key); they are passed through as is.
    return ma.fields.String(
        required=not nullable, allow_none=nullable, metadata={"format": "date-time", "description": description}
    )


class JobLinksSchema(ma.Schema):
    self = ma.fields.String(required=True, metadata={"description": "This job's URL."})


class _LinkedJobSchema(ma.Schema):
    """Dumps a Job record together with its links."""

    links = ma.fields.Nested(JobLinksSchema, required=True)

    @ma.pre_dump
    def _add_links(self, job: Job, **_: Any) -> dict[str, Any]:
        # Output URLs are signed for this answer: a stored one would expire while its record lives on.
        outputs = [current().outputs.link(output) for output in job.outputs]
        return {**dataclasses.asdict(job), "outputs": outputs, "links": {"self": job_url(job.job_id)}}


class JobAcceptedSchema(_LinkedJobSchema):
    """The answer to an accepted submission: poll `links.self` (also the Location header) for the outcome."""

    job_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": [states.QUEUED]})
    workflow = ma.fields.String(required=True)


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
    finished_at = _timestamp("When it succeeded, failed or was cancelled.", nullable=True)
    attempts = ma.fields.Integer(required=True, metadata={"description": "Times a GPU worker started it."})
    params = ma.fields.Dict(required=True, metadata={"description": "The validated request parameters."})
    outputs = ma.fields.List(ma.fields.Nested(OutputSchema), required=True)
    error = ma.fields.String(allow_none=True, metadata={"description": "Why the job failed."})
    source = ma.fields.String(required=True, metadata={"description": "Who submitted it: api or python."})
    gpu_seconds = ma.fields.Float(
        allow_none=True, metadata={"description": "ComfyUI's execution time of the job's prompt, once it succeeded."}
    )


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
    status = ma.fields.String(required=True, metadata={"enum": ["ok", "error"]})
    latency_ms = ma.fields.Float(required=True)
    error = ma.fields.String(metadata={"description": "Why the check failed."})
    detail = ma.fields.Dict(metadata={"description": "What the check saw (names, counts, states)."})


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    components = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(ComponentSchema), required=True)
