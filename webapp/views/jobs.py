"""GET /api/v1/jobs/{job_id}, GET /api/v1/jobs and POST /api/v1/jobs/{job_id}/cancel: the job records.

A user key sees only its owner's jobs (another owner's answers 404, exactly like a missing one); an operator
key sees every job.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.jobs import states
from gpuorch.jobs.store import Job, TransitionRefused
from lifecycle.facade import ACTIVE_STATES, LifecycleStatus
from webapp.auth import caller
from webapp.context import current
from webapp.errors import ApiError, error_responses
from webapp.schemas import JobAnswer, JobListQuerySchema, JobListSchema, JobQuerySchema, JobSchema

blp = Blueprint("jobs", __name__, url_prefix="/api/v1", description="Follow jobs: status, progress, outputs.")

# DynamoDB refuses a longer partition key (a ValidationException, which would be answered 503, as if the table
# were down); no job can have such an id, so it is not asked.
MAX_JOB_ID_BYTES = 2048


def job_not_found(job_id: str) -> ApiError:
    return ApiError(404, "job_not_found", f"No job has the id {job_id[:100]!r}{'...' if len(job_id) > 100 else ''}.")


def could_exist(job_id: str) -> bool:
    return len(job_id.encode("utf-8", "surrogatepass")) <= MAX_JOB_ID_BYTES


@blp.route("/jobs/<string:job_id>")
class JobView(MethodView):
    @blp.arguments(JobQuerySchema, location="query", unknown=ma.RAISE, as_kwargs=True)
    @blp.response(200, JobSchema)
    @error_responses(blp, 404, 503)
    def get(self, job_id: str, wait: float = 0.0):
        """One job: its status, progress, timestamps, parameters, outputs and error; where it is and why it waits,
        if queued

        With wait=N (at most 60), the answer comes as soon as the job is over, or after N seconds with the record
        as it is then: 503 too_many_waiters (Retry-After) when this API process has GPUORCH_API_WAITERS requests
        waiting already.
        """
        context = current()
        job = context.visible_job(job_id, caller()) if could_exist(job_id) else None
        if job is None:
            raise job_not_found(job_id)
        if wait > 0 and not states.is_terminal(job.status):
            with context.watch.follow(job_id) as follower:
                job = follower.until_over(job, wait)
        return answers([job])[0]


@blp.route("/jobs/<string:job_id>/cancel")
class JobCancelView(MethodView):
    @blp.response(200, JobSchema)
    @error_responses(blp, 404, 409, 503)
    def post(self, job_id: str):
        """Cancel a job: a queued one never runs, a running one is stopped in ComfyUI; 409 once it has finished"""
        context = current()
        if not could_exist(job_id) or context.visible_job(job_id, caller()) is None:
            raise job_not_found(job_id)
        try:
            return context.services.jobs.transition(job_id, states.CANCELLED)
        except TransitionRefused as refused:
            if refused.current is None:  # deleted meanwhile
                raise job_not_found(job_id) from None
            raise  # already finished: answered 409 (job_finished)


@blp.route("/jobs")
class JobListView(MethodView):
    # Query parameters a client misspells are refused, not silently ignored.
    @blp.arguments(JobListQuerySchema, location="query", unknown=ma.RAISE, as_kwargs=True)
    @blp.response(200, JobListSchema)
    @error_responses(blp, 503)
    def get(self, *, limit: int, status: str | None = None, cursor: str | None = None):
        """Jobs newest first, optionally of one status; follow next_cursor for older pages

        A user key lists its owner's jobs; an operator key every job.
        """
        key = caller()
        owner = None if key.operator else key.owner
        jobs, next_cursor = current().services.jobs.list(status=status, limit=limit, cursor=cursor, owner=owner)
        return {"jobs": answers(jobs), "next_cursor": next_cursor, "links": page_links(status, limit, cursor, next_cursor)}


LOW_WITHOUT_GPU = ("priority low: it starts no GPU by itself, and none is up now; it runs once one is up for other "
                   "work, or in its idle time before a stop")
LOW_BEHIND_NORMAL = "priority low: it runs on the GPU that is up, after the normal-priority jobs waiting"


def waiting_reason(job: Job, status: LifecycleStatus | None) -> str | None:
    """Why a queued job is not starting: a low-priority one waits for a GPU that is up anyway; a normal one for the
    last lifecycle check's refusal to start a GPU, if it refused. None otherwise."""
    if job.status != states.QUEUED:
        return None
    if job.options.low:
        gpu_up = status is not None and any(i.get("state") in ACTIVE_STATES for i in status.instances)
        return LOW_BEHIND_NORMAL if gpu_up else LOW_WITHOUT_GPU
    return status.blocked_reason if status is not None else None


def answers(jobs: list[Job]) -> list[JobAnswer]:
    """The jobs as answered; the lifecycle is read once, and only when some job is queued or running."""
    context = current()
    now = context.clock()
    waiting = any(job.status in (states.QUEUED, states.RUNNING) for job in jobs)
    status = context.lifecycle_status() if any(job.status == states.QUEUED for job in jobs) else None
    found = context.whereabouts(jobs, now) if waiting else {}
    return [JobAnswer(job, waiting_reason(job, status), found.get(job.job_id), now) for job in jobs]


def page_links(status: str | None, limit: int, cursor: str | None, next_cursor: str | None) -> dict[str, Any]:
    query = {"limit": limit, **({"status": status} if status else {})}
    links = {"self": url_for("jobs.JobListView", **query, **({"cursor": cursor} if cursor else {}))}
    if next_cursor:
        links["next"] = url_for("jobs.JobListView", **query, cursor=next_cursor)
    return links
