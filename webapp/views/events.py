"""GET /api/v1/jobs/{job_id}/events: a job's status changes and progress as Server-Sent Events, ending with its
final record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.wsgi import ClosingIterator

from gpuorch.jobs import states
from gpuorch.jobs.store import Job
from gpuorch.jobs.watch import Follower
from webapp.auth import caller
from webapp.context import current
from webapp.errors import error_responses
from webapp.schemas import JobSchema
from webapp.views.jobs import answers, could_exist, job_not_found

blp = Blueprint("events", __name__, url_prefix="/api/v1", description="Follow a job as it happens.")

# A comment line this often keeps proxies from closing a quiet stream, and finds a client that went away.
KEEPALIVE_S = 15.0
# While a job waits, where it is (its phase, its place in the queue) is looked at this often: the GPU starting or
# the jobs ahead finishing change it without a change of its record.
PLACE_CHECK_S = 5.0
# What a `status` event is sent again for when the record has not changed: the job moved on while it waits.
PLACE = ("phase", "queue_position", "waiting_reason")
EVENT_STREAM = "text/event-stream"

_STREAM_DOC = (
    "A text/event-stream (Server-Sent Events) of the job: `status` events (its status, progress, node, and while "
    "it waits where it is and when it should start: phase, queue_position, eta) whenever the status changes and, "
    "while it waits, whenever its phase, place in the queue or waiting reason changes (looked at every 5 s), "
    "`progress` events (progress, node) as it runs, and last an `end` event holding the job's final record (as GET "
    "/api/v1/jobs/{job_id} answers it), after which the stream closes. The first event is a `status` event of the "
    "job as it is now; a job already over gets its `end` event at once. A comment line is sent every 15 s while "
    "nothing changes."
)


# Each event of the stream, as Server-Sent Events parse it: its name, and its data, one line of JSON.
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["status", "progress", "end"]},
        "data": {"type": "string", "contentMediaType": "application/json", "description": (
            "status: job_id, status, progress, node, updated_at, waiting_reason, phase, queue_position, eta; "
            "progress: job_id, progress, node; end: the job's record (the Job schema).")},
    },
}


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event: its name and its data as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def answer_record(job: Job) -> dict[str, Any]:
    """The job's record as GET /api/v1/jobs/{job_id} answers it (outputs with their signed links)."""
    return JobSchema().dump(answers([job])[0])


def status_data(job: Job, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `status` event's data: the job's state and, while it waits, where it is (the record's own fields); from
    `record`, its answer_record, when it is made already."""
    record = record if record is not None else answer_record(job)
    keep = ("job_id", "status", "progress", "node", "updated_at", "waiting_reason", "phase", "queue_position",
            "eta")
    return {name: record[name] for name in keep if name in record}


def job_events(job: Job, follower: Follower | None) -> Iterator[str]:
    """The stream: the job as it is, each change (and each move while it waits), then its final record."""
    record = answer_record(job)
    # An ended job's last status event and its end are made from one answer: its caller hears the end sooner.
    final = record if states.is_terminal(job.status) else None
    told = status_data(job, record)
    yield sse("status", told)
    while follower is not None and not states.is_terminal(job.status):
        latest = follower.changed(job, PLACE_CHECK_S if told.get("phase") else KEEPALIVE_S) or job
        if latest.status != job.status:
            record = answer_record(latest)
            final = record if states.is_terminal(latest.status) else None
            told = status_data(latest, record)
            yield sse("status", told)
        elif (latest.progress, latest.node) != (job.progress, job.node):
            yield sse("progress", {"job_id": latest.job_id, "progress": latest.progress, "node": latest.node})
        elif told.get("phase") and _moved(told, place := status_data(latest)):
            told = place
            yield sse("status", told)
        else:
            yield ": keep-alive\n\n"
        job = latest
    yield sse("end", final if final is not None else answer_record(job))


def _moved(told: dict[str, Any], now: dict[str, Any]) -> bool:
    return any(told.get(name) != now.get(name) for name in PLACE)


@blp.route("/jobs/<string:job_id>/events")
class JobEventsView(MethodView):
    @blp.doc(responses={200: {"description": _STREAM_DOC, "content": {EVENT_STREAM: {"schema": EVENT_SCHEMA}}}})
    @error_responses(blp, 404, 503)
    def get(self, job_id: str):
        """The job's status changes and progress as they happen (Server-Sent Events), ending with its final record

        Each open stream holds one of the API process's waiting places: 503 too_many_waiters (Retry-After) when it
        has GPUORCH_API_WAITERS already.
        """
        context = current()
        job = context.visible_job(job_id, caller()) if could_exist(job_id) else None
        if job is None:
            raise job_not_found(job_id)
        stack = ExitStack()
        # Taken before the answer starts, so a full process answers 503 rather than an empty stream.
        follower = None if states.is_terminal(job.status) else stack.enter_context(context.watch.follow(job_id))
        # The follower is let go when the server closes the answer: the stream ended, or its client went away.
        stream = ClosingIterator(stream_with_context(job_events(job, follower)), [stack.close])
        return Response(stream, status=200, mimetype=EVENT_STREAM,
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
