"""Submitting jobs from Python: `camera_angle.delay(...)`, `qwen_image_edit.delay(...)`, `run_workflow.delay(...)`,
and many at once with `submit_batch([...])`.

`.delay()` submits exactly as the REST API does (gpuorch.jobs.submission.JobSubmitter: validate, store inline
images, write the job record, then send the task message), so `GET /api/v1/jobs/{result.id}` works for both, and
returns the Celery AsyncResult of the job: `result.get()` waits for it in Celery's DynamoDB result backend;
`wait(result.id)` and `follow(result.id)` read its job record as the API's waits and event stream do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from celery.result import AsyncResult

from gpuorch.celery import names
from gpuorch.jobs import states
from gpuorch.celery.app import GpuorchCelery, create_celery_app
from gpuorch.jobs.idempotency import checked_key
from gpuorch.jobs.options import OPTION_NAMES
from gpuorch.jobs.store import Job
from gpuorch.jobs.watch import JobWatch
from gpuorch.settings import Settings
from gpuorch.webhooks.events import EVENTS_FIELD, WEBHOOK_FIELD

_lock = threading.Lock()
_app: GpuorchCelery | None = None
_watch: tuple[GpuorchCelery, JobWatch] | None = None
# A Python process follows as many jobs as it likes: its threads are its own.
PYTHON_FOLLOWERS = 10_000


def use_app(app: GpuorchCelery | None) -> None:
    """Submit through `app` from now on (None: an app built from the environment at the next submission)."""
    global _app
    with _lock:
        _app = app


def submitting_app() -> GpuorchCelery:
    """The app `.delay()` submits through: the one given to use_app, else one built once from GPUORCH_* variables."""
    global _app
    with _lock:
        if _app is None:
            _app = create_celery_app(Settings.from_env())
        return _app


def _job_watch() -> JobWatch:
    global _watch
    app = submitting_app()
    with _lock:
        if _watch is None or _watch[0] is not app:
            _watch = (app, JobWatch(app.services.jobs.get_many, interval_s=app.settings.wait_poll_seconds,
                                    capacity=PYTHON_FOLLOWERS))
        return _watch[1]


def job(job_id: str) -> Job | None:
    """The job's record as it is now (what GET /api/v1/jobs/{job_id} shows), or None when there is none."""
    return submitting_app().services.jobs.get(job_id)


def wait(job_id: str, timeout: float = 60.0) -> Job:
    """The job's record once it is over (succeeded, failed or cancelled), or as it is after `timeout` seconds.
    KeyError when it has no record."""
    record = job(job_id)
    if record is None:
        raise KeyError(job_id)
    with _job_watch().follow(job_id) as follower:
        return follower.until_over(record, timeout)


def follow(job_id: str, timeout: float | None = None) -> Iterator[Job]:
    """The job's record now, then each time its status, progress or node changes, ending with its final record
    (or when `timeout` seconds have passed). KeyError when it has no record."""
    record = job(job_id)
    if record is None:
        raise KeyError(job_id)
    yield record
    deadline = None if timeout is None else time.monotonic() + timeout
    with _job_watch().follow(job_id) as follower:
        while not states.is_terminal(record.status):
            left = 60.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return
            latest = follower.changed(record, left)
            if latest is not None and latest is not record:
                record = latest
                yield record


class JobTask:
    """The Python caller's side of one GPU task: `.delay(**params)` submits a job and returns its AsyncResult."""

    def __init__(self, name: str):
        self.name = name
        self.workflow = names.GPU_TASK_WORKFLOWS[name]

    def __repr__(self) -> str:
        return f"<JobTask {self.name}>"

    def delay(self, *, idempotency_key: str | None = None, **kwargs: Any) -> AsyncResult:
        return self.apply_async(kwargs=kwargs, idempotency_key=idempotency_key)

    def apply_async(self, args: tuple | list | None = None, kwargs: dict[str, Any] | None = None,
                    task_id: str | None = None, *, idempotency_key: str | None = None) -> AsyncResult:
        """Submit one job (`task_id`: its job id, else a new one). Raises UnknownWorkflow, or ParamsInvalid naming
        each bad field; nothing is recorded or queued then. A Python caller has no API key: its jobs belong to
        GPUORCH_SUBMIT_OWNER (empty: only operator keys see them), and its webhook (`webhook=URL`, with
        `webhook_events=[...]`) is signed with the webhook secret of the key GPUORCH_SUBMIT_KEY_ID names.

        With `idempotency_key`, the same request with the same key, again or at once, from any process, gets the
        first one's job (its AsyncResult) and queues nothing more; another request with it raises
        IdempotencyKeyReused (a ParamsInvalid). `task_id` and a key do not go together: the key chooses the id."""
        if args:
            raise TypeError(f"{self.name} takes keyword arguments only")
        if task_id is not None and idempotency_key is not None:
            raise TypeError("give task_id or idempotency_key, not both")
        given = dict(kwargs or {})
        webhook, events = given.pop(WEBHOOK_FIELD, None), given.pop(EVENTS_FIELD, None)
        workflow, params = self.split(given)
        app = submitting_app()
        owner = app.settings.submit_owner or None
        hooks = {"webhook": webhook, "webhook_events": events, "key_id": app.settings.submit_key_id}
        if task_id is not None:
            job = app.submitter.submit(workflow, params, source="python", owner=owner, job_id=task_id, **hooks)
        else:
            job = app.submitter.submit_once(checked_key(idempotency_key), workflow, params, source="python",
                                            owner=owner, **hooks).value
        return app.AsyncResult(job.job_id)

    def AsyncResult(self, job_id: str) -> AsyncResult:  # noqa: N802 - Celery's name for it
        return submitting_app().AsyncResult(job_id)

    def split(self, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(workflow name, request) from the keyword arguments the caller gave: the parameters, and the job's options
        (priority=, deadline=, ttl_seconds=, output=) beside them."""
        if self.workflow is not None:
            return self.workflow, dict(kwargs)
        options = {name: value for name, value in kwargs.items() if name in OPTION_NAMES}
        extra = set(kwargs) - {"workflow", "params", *options}
        if extra or "workflow" not in kwargs:
            raise TypeError(f"{self.name} takes workflow=NAME and params={{...}}, and the job's options")
        params = kwargs.get("params") or {}
        return kwargs["workflow"], {**params, **options} if isinstance(params, dict) else params


camera_angle = JobTask(names.CAMERA_ANGLE)
"""Change the camera angle of one image: `camera_angle.delay(image="s3://...", move="top_down")`."""
qwen_image_edit = JobTask(names.QWEN_IMAGE_EDIT)
"""Edit an image from a prompt: `qwen_image_edit.delay(prompt="...", images=["s3://..."])`."""
run_workflow = JobTask(names.RUN_WORKFLOW)
"""Any workflow by name: `run_workflow.delay(workflow="camera-angle", params={...})`."""


@dataclass(frozen=True)
class BatchResult:
    """An accepted batch: its id (GET /api/v1/batches/{id}) and each item's AsyncResult, in the order given."""

    id: str
    results: tuple[AsyncResult, ...]


def submit_batch(items: list[dict[str, Any]], *, idempotency_key: str | None = None) -> BatchResult:
    """Submit up to gpuorch.jobs.batches.MAX_BATCH_ITEMS jobs as one batch: each item a job request (the parameters
    and options a `.delay()` takes) naming its workflow (`{"workflow": "camera-angle", "image": ..., ...}`).
    Accepted whole or refused whole: ParamsInvalid names every bad item's fields as items.<index>.<field>. With
    `idempotency_key`, the same batch again gets the first one."""
    app = submitting_app()
    accepted = app.batches.submit_once(checked_key(idempotency_key), items, source="python",
                                       owner=app.settings.submit_owner or None)
    return BatchResult(accepted.value.batch_id, tuple(app.AsyncResult(job_id) for job_id in accepted.value.job_ids))
