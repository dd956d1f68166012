"""The GPU job tasks: `camera_angle.delay(...)`, `qwen_image_edit.delay(...)`, `run_workflow.delay(...)`.

Calling `.delay()` / `.apply_async()` validates the parameters and writes the job record before the
message is sent, exactly as a REST submission does, so `GET /api/v1/jobs/{result.id}` works for both.
"""

from __future__ import annotations

from typing import Any, Callable

from celery import Task
from celery.result import AsyncResult

from gpuorch import submission
from gpuorch.celery_app import app
from gpuorch.errors import JobCancelled, JobFailed
from gpuorch.execution.runner import run_job
from gpuorch.jobs.store import Job


class WorkflowTask(Task):
    """A task that runs one workflow on the GPU; its Celery task id is the job id and the ComfyUI prompt_id."""

    #: The workflow this task runs; None for run_workflow, whose caller names it.
    workflow_name: str | None = None
    #: Expected ends of a job: logged as such by Celery, without a traceback.
    throws = (JobFailed, JobCancelled)

    def split(self, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(workflow name, parameters) from the task's keyword arguments."""
        return self.workflow_name, dict(kwargs)

    def join(self, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
        """The task's keyword arguments for a workflow and its parameters (ids and small values only)."""
        return dict(params)

    def apply_async(self, args=None, kwargs=None, task_id=None, **options) -> AsyncResult:
        if args:
            raise TypeError(f"{self.name} takes keyword arguments only")
        workflow, params = self.split(kwargs or {})
        # A Python caller has no API key: its jobs belong to GPUORCH_SUBMIT_OWNER (none: operators see them).
        owner = self.app.settings.submit_owner or None
        job = self.submit(workflow, params, source="python", job_id=task_id, owner=owner, **options)
        return self.AsyncResult(job.job_id)

    def submit(self, workflow: str, params: dict[str, Any], *, source: str, job_id: str | None = None,
               owner: str | None = None, **options) -> Job:
        """Accept a job (record first, then the message) as `owner`'s; raises ParamsInvalid / UnknownWorkflow."""

        def publish(job_id: str, wf, clean: dict[str, Any]) -> None:
            self.publish(job_id, wf.name, clean, **options)

        job = submission.accept(self.app.services, workflow, params, publish, source=source, job_id=job_id,
                                owner=owner)
        self.app.lifecycle_trigger()
        return job

    def publish(self, job_id: str, workflow: str, params: dict[str, Any], **options) -> None:
        """Send the task message of a job that is already recorded (no validation, no record written)."""
        super().apply_async(kwargs=self.join(workflow, params), task_id=job_id, **options)

    def perform(self, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
        return run_job(self.app.services, self.request.id, workflow, params, task=self)


@app.task(base=WorkflowTask, bind=True, name="gpuorch.tasks.camera_angle", workflow_name="camera-angle")
def camera_angle(self: WorkflowTask, **params: Any) -> dict[str, Any]:
    """Change the camera angle of one image (8 steps, the multiple-angles LoRA)."""
    return self.perform("camera-angle", params)


@app.task(base=WorkflowTask, bind=True, name="gpuorch.tasks.qwen_image_edit", workflow_name="qwen-image-edit")
def qwen_image_edit(self: WorkflowTask, **params: Any) -> dict[str, Any]:
    """Edit an image from a prompt and up to 3 reference images (4 steps)."""
    return self.perform("qwen-image-edit", params)


class AnyWorkflowTask(WorkflowTask):
    """run_workflow(workflow=NAME, params={...}): any registered workflow, named by the caller."""

    def split(self, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        extra = set(kwargs) - {"workflow", "params"}
        if extra or "workflow" not in kwargs:
            raise TypeError("run_workflow takes workflow=NAME and params={...}")
        return kwargs["workflow"], kwargs.get("params") or {}

    def join(self, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"workflow": workflow, "params": params}


@app.task(base=AnyWorkflowTask, bind=True, name="gpuorch.tasks.run_workflow")
def run_workflow(self: AnyWorkflowTask, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run any registered workflow by name."""
    return self.perform(workflow, params)


def task_for(workflow: str) -> WorkflowTask:
    """The task a REST submission of `workflow` goes through (the named task when there is one)."""
    for task in (camera_angle, qwen_image_edit):
        if task.workflow_name == workflow:
            return task
    return run_workflow


def gpu_task_workflows() -> dict[str, str | None]:
    """Each GPU task's name -> the workflow it runs (None: run_workflow, whose message names it)."""
    return {task.name: task.workflow_name for task in (camera_angle, qwen_image_edit, run_workflow)}


def publisher(celery_app) -> Callable[[str, str, dict[str, Any]], None]:
    """Queues an already recorded job (a redriven one) on its workflow's task through `celery_app`, and asks
    for a GPU."""

    def publish(job_id: str, workflow: str, params: dict[str, Any]) -> None:
        # Looked up on that app, the task publishes to its broker and queues.
        celery_app.tasks[task_for(workflow).name].publish(job_id, workflow, params)
        celery_app.lifecycle_trigger()

    return publish
