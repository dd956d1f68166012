"""The tasks the workers run: each takes what its message names, makes one call, and owns only how it ends."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject

from gpuorch.aws.failures import is_transient
from gpuorch.celery import names
from gpuorch.celery.giveback import give_back_now
from gpuorch.errors import JobGivenBack, JobOutcome, Unavailable
from gpuorch.execution.runner import run_job
from gpuorch.clock import utc_now
from gpuorch.jobs.deadletters import sweep_dead_letters
from gpuorch.jobs.expiry import expire_overdue
from lifecycle.live.build import lifecycle_check

# Expected ends of a job (failed, cancelled): Celery logs them as such, without a traceback.
JOB_ENDS = (JobOutcome,)


def run(task: Task, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run the job whose id is the task's id. A job that cannot go on now (what it needs is unavailable: its
    record, unreachable or missing) gives its message back undeleted: SQS delivers it again, or moves it to the
    dead-letter queue at the last. One its interrupted spot instance cannot finish is made visible again at once."""
    try:
        return run_job(task.app.services, task.request.id, workflow, params, update_state=task.update_state,
                       interruption=task.app.notice_board.read)
    except JobGivenBack as exc:
        give_back_now(task.app.services.aws.sqs, task.request)
        raise Reject(str(exc), requeue=False) from exc
    except Unavailable as exc:
        raise Reject(str(exc), requeue=False) from exc


@shared_task(bind=True, name=names.CAMERA_ANGLE, throws=JOB_ENDS)
def camera_angle(self: Task, **params: Any) -> dict[str, Any]:
    """Change the camera angle of one image (8 steps, the multiple-angles LoRA)."""
    return run(self, "camera-angle", params)


@shared_task(bind=True, name=names.QWEN_IMAGE_EDIT, throws=JOB_ENDS)
def qwen_image_edit(self: Task, **params: Any) -> dict[str, Any]:
    """Edit an image from a prompt and up to 3 reference images (4 steps)."""
    return run(self, "qwen-image-edit", params)


@shared_task(bind=True, name=names.RUN_WORKFLOW, throws=JOB_ENDS)
def run_workflow(self: Task, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run any workflow by name."""
    return run(self, workflow, params)


@shared_task(bind=True, name=names.CHECK_GPU, ignore_result=True)
def check_gpu(self: Task) -> None:
    """Start the GPU when work waits, stop it when idle (control queue)."""
    lifecycle_check(self.app.services).run()


@shared_task(bind=True, name=names.EXPIRE_JOBS, ignore_result=True)
def expire_jobs(self: Task) -> int:
    """Expire the queued jobs past their deadline (control queue); returns how many."""
    return len(expire_overdue(self.app.services.jobs, utc_now()))


@shared_task(bind=True, name=names.SWEEP_DEAD_LETTERS, ignore_result=True)
def sweep_dead_letter_queue(self: Task) -> int:
    """Record as failed the jobs whose message reached the GPU dead-letter queue; returns how many were read."""
    services = self.app.services
    settings = services.settings
    letters = sweep_dead_letters(services.aws.sqs, services.aws.queue_url(settings.gpu_dead_letter_queue),
                                 services.jobs, max_receive_count=settings.max_receive_count)
    return len(letters)


def _gave_back(exc: Exception) -> Reject:
    """A control task that AWS failed now: its message goes back undeleted, for another try."""
    return Reject(str(exc), requeue=False)


@contextmanager
def _transient_gives_back():
    """AWS failing for now gives the message back to its queue (tried again); anything else is raised as it is."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise _gave_back(exc) from exc
        raise


@shared_task(bind=True, name=names.DELIVER_WEBHOOK, ignore_result=True)
def deliver_webhook(self: Task, job_id: str, topic: str) -> None:
    """Try one webhook delivery of a job, if it is pending and due (control queue)."""
    with _transient_gives_back():
        self.app.deliverer.deliver(job_id, topic)


@shared_task(bind=True, name=names.RESEND_WEBHOOK, ignore_result=True)
def resend_webhook(self: Task, job_id: str, topic: str) -> None:
    """The job's owner asked for a delivery again: a new round of tries, the first now (control queue)."""
    with _transient_gives_back():
        self.app.deliverer.resend(job_id, topic)


@shared_task(bind=True, name=names.SWEEP_WEBHOOKS, ignore_result=True)
def sweep_webhooks(self: Task) -> int:
    """Queue the webhook deliveries whose next try is due; how many."""
    return self.app.deliverer.sweep(self.app.enqueue_delivery)
