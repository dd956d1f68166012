"""Deadlines: a queued job not started by its deadline ends expired, a status change like a cancellation, so that it
never runs and costs nothing; the control worker sweeps them, and the GPU worker expires one it receives late."""

from __future__ import annotations

import logging
from datetime import datetime

from gpuorch.jobs import states
from gpuorch.jobs.store import Job, JobStore, TransitionRefused

log = logging.getLogger(__name__)


def expiry_reason(job: Job) -> str:
    return f"not started by its deadline {job.deadline}: it never ran"


def expire(jobs: JobStore, job: Job) -> Job | None:
    """Move a queued job past its deadline to expired (a conditional write: one that started meanwhile is left to
    run); returns the expired record, or None when it had moved on."""
    try:
        expired = jobs.transition(job.job_id, states.EXPIRED, error=expiry_reason(job))
    except TransitionRefused:
        return None
    log.info("job %s expired: %s", job.job_id, expired.error, extra={"job_id": job.job_id})
    return expired


def expire_overdue(jobs: JobStore, now: datetime) -> list[str]:
    """Expire every queued job whose deadline has passed by `now`; returns their ids. Their messages stay queued
    until a GPU worker receives and drops them, and no GPU starts for them (lifecycle.live.check counts only the
    jobs that may still run)."""
    return [job.job_id for job in jobs.overdue(now) if expire(jobs, job) is not None]
