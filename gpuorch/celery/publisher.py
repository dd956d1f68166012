"""Publishing accepted jobs as Celery task messages, and asking the control worker for a GPU at once."""

from __future__ import annotations

from celery import Celery

from gpuorch.celery import names
from gpuorch.jobs.store import Job
from gpuorch.settings import Settings
from lifecycle.live.trigger import CheckTrigger

# Submissions ask for a lifecycle check at most this often per process (beat checks regularly anyway).
TRIGGER_INTERVAL_S = 5.0


class CeleryPublisher:
    """The JobSubmitter's `publish`: one message on the GPU queue per job (its task id is the job id), then a
    lifecycle check, so that a stopped GPU starts within seconds rather than at beat's next check. A low-priority
    job goes to the low queue, and asks for no check."""

    def __init__(self, app: Celery, settings: Settings):
        self.app = app
        self.settings = settings
        self.trigger = CheckTrigger(
            lambda: app.send_task(names.CHECK_GPU, expires=settings.lifecycle_check_seconds),
            min_interval_s=TRIGGER_INTERVAL_S,
        )

    def __call__(self, job: Job) -> None:
        task_name = names.task_for(job.workflow)
        kwargs = names.task_kwargs(task_name, job.workflow, job.params)
        if job.options.low:
            # Its own queue, which starts no GPU and which the GPU worker drains after the normal one.
            queue = names.queue_name(names.GPU_LOW_QUEUE, self.settings)
            self.app.send_task(task_name, kwargs=kwargs, task_id=job.job_id, queue=queue, routing_key=queue)
            return  # a low-priority job starts no GPU: no lifecycle check for it
        # Routed by the app's task_routes (gpuorch.celery.app), like every other message.
        self.app.send_task(task_name, kwargs=kwargs, task_id=job.job_id)
        self.trigger()
