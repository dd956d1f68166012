"""Every Celery task name and the queue each one goes to: the one place these strings are written."""

from __future__ import annotations

from typing import Any

from gpuorch.settings import Settings

# The GPU tasks: each runs one job of a workflow on the GPU instance. Their names are in every queued message (and
# in Flower), so they never change.
CAMERA_ANGLE = "gpuorch.tasks.camera_angle"
QWEN_IMAGE_EDIT = "gpuorch.tasks.qwen_image_edit"
RUN_WORKFLOW = "gpuorch.tasks.run_workflow"

# The control tasks: short AWS calls on the always-on host (invariant 5: never on the GPU queue, since the GPU
# instance is off exactly when they must run).
CHECK_GPU = "gpuorch.lifecycle.check"
SWEEP_DEAD_LETTERS = "gpuorch.control.sweep_dead_letters"
EXPIRE_JOBS = "gpuorch.control.expire_jobs"
# Webhooks: each delivery is tried by the control worker, never by the API request or the GPU job that announced it.
DELIVER_WEBHOOK = "gpuorch.webhooks.deliver"
RESEND_WEBHOOK = "gpuorch.webhooks.resend"
SWEEP_WEBHOOKS = "gpuorch.webhooks.sweep"

#: Each GPU task and the workflow it runs; None: run_workflow, whose message names the workflow.
GPU_TASK_WORKFLOWS: dict[str, str | None] = {
    CAMERA_ANGLE: "camera-angle",
    QWEN_IMAGE_EDIT: "qwen-image-edit",
    RUN_WORKFLOW: None,
}
GPU_TASKS = tuple(GPU_TASK_WORKFLOWS)
CONTROL_TASKS = (CHECK_GPU, SWEEP_DEAD_LETTERS, EXPIRE_JOBS, DELIVER_WEBHOOK, RESEND_WEBHOOK, SWEEP_WEBHOOKS)

# The queues, by what they are for; their SQS names are settings (GPUORCH_GPU_QUEUE, GPUORCH_GPU_LOW_QUEUE,
# GPUORCH_CONTROL_QUEUE). GPU tasks go to GPU_QUEUE, or to GPU_LOW_QUEUE for a low-priority job.
GPU_QUEUE = "gpu"
GPU_LOW_QUEUE = "gpu_low"
CONTROL_QUEUE = "control"


def queue_name(queue: str, settings: Settings) -> str:
    """The SQS name of GPU_QUEUE, GPU_LOW_QUEUE or CONTROL_QUEUE under these settings."""
    return {GPU_QUEUE: settings.gpu_queue, GPU_LOW_QUEUE: settings.gpu_low_queue,
            CONTROL_QUEUE: settings.control_queue}[queue]


def gpu_queues(settings: Settings) -> tuple[str, str]:
    """The GPU worker's queues, in the order it drains them: normal jobs first, low-priority ones after."""
    return settings.gpu_queue, settings.gpu_low_queue


def queue_of(task_name: str) -> str:
    """GPU_QUEUE or CONTROL_QUEUE: where a task's messages go. KeyError for a task gpuorch does not have."""
    if task_name in GPU_TASK_WORKFLOWS:
        return GPU_QUEUE
    if task_name in CONTROL_TASKS:
        return CONTROL_QUEUE
    raise KeyError(f"no task named {task_name!r}")


def task_for(workflow: str) -> str:
    """The task a job of `workflow` is queued as: the workflow's own when it has one, else run_workflow."""
    for task_name, runs in GPU_TASK_WORKFLOWS.items():
        if runs == workflow:
            return task_name
    return RUN_WORKFLOW


def task_kwargs(task_name: str, workflow: str, params: dict[str, Any]) -> dict[str, Any]:
    """A GPU task's keyword arguments: a named task takes the parameters themselves, run_workflow both names."""
    if GPU_TASK_WORKFLOWS[task_name] is None:
        return {"workflow": workflow, "params": params}
    return dict(params)
