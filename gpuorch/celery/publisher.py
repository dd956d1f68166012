"""Publishing accepted jobs as Celery task messages, and asking the control worker for a GPU at once."""

from __future__ import annotations

from typing import Any

from celery import Celery

from gpuorch.celery import names
from gpuorch.settings import Settings
from lifecycle.live.trigger import CheckTrigger

# Submissions ask for a lifecycle check at most this often per process (beat checks regularly anyway).
TRIGGER_INTERVAL_S = 5.0


class CeleryPublisher:
    """The JobSubmitter's `publish`: one message on the GPU queue per job (its task id is the job id), then a
    lifecycle check, so that a stopped GPU starts within seconds rather than at beat's next check."""

    def __init__(self, app: Celery, settings: Settings):
        self.app = app
        self.trigger = CheckTrigger(
            lambda: app.send_task(names.CHECK_GPU, expires=settings.lifecycle_check_seconds),
            min_interval_s=TRIGGER_INTERVAL_S,
        )

    def __call__(self, job_id: str, workflow: str, params: dict[str, Any]) -> None:
        task_name = names.task_for(workflow)
        # Routed by the app's task_routes (gpuorch.celery.app), like every other message.
        self.app.send_task(task_name, kwargs=names.task_kwargs(task_name, workflow, params), task_id=job_id)
        self.trigger()
