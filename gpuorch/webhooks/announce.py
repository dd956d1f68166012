"""Hearing a job's changes where they are written and queueing the webhook deliveries they call for."""

from __future__ import annotations

from gpuorch.jobs.store import PROGRESS_CHANGE, Job
from gpuorch.webhooks.deliverer import Enqueue
from gpuorch.webhooks.events import JOB_PROGRESS, Subscription, event_of, topic


def topic_of(job: Job, change: str) -> str | None:
    """The delivery a change calls for, if the job's webhook wants it: its status's event, or its progress."""
    subscription = Subscription.from_record(job.webhook)
    if subscription is None:
        return None
    if change == PROGRESS_CHANGE:
        return topic(JOB_PROGRESS, job.progress) if subscription.wants(JOB_PROGRESS) else None
    event = event_of(job.status)
    return event if event is not None and subscription.wants(event) else None


class WebhookAnnouncer:
    """A JobStore listener: a small control-queue message per delivery, so that the control worker POSTs it,
    neither the API request nor the GPU job that made the change."""

    def __init__(self, enqueue: Enqueue):
        self.enqueue = enqueue

    def __call__(self, job: Job, change: str) -> None:
        wanted = topic_of(job, change)
        if wanted is not None:
            self.enqueue(job.job_id, wanted)
