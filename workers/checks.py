"""Start-up checks of a GPU worker: the queue's timeouts, the declared model files, and the workflow templates
against the live ComfyUI."""

from __future__ import annotations

from pathlib import Path

from gpuorch.errors import ConfigurationError, Unavailable
from gpuorch.modelsync.check import file_problems
from gpuorch.services import Services
from gpuorch.workflows.models import model_files
from gpuorch.workflows.preflight import check_templates, live_catalogue

# Time allowed beyond the jobs themselves: receiving, uploading outputs, the final DynamoDB writes.
SAFETY_MARGIN_S = 30


def visibility_problems(visibility_timeout: int, task_time_limit: int, *, messages_held: int = 1) -> list[str]:
    """Why a GPU queue's visibility timeout cannot protect jobs run under this time limit (empty: it can).

    Invariant 1: a message must stay hidden while its job runs, or SQS hands it to another consumer and
    the job runs twice. With prefetch 1 a worker also holds one more message while the current job runs,
    and that message's clock starts at receipt: it needs the running job's time plus its own.
    """
    problems = []
    required = (1 + messages_held) * task_time_limit + SAFETY_MARGIN_S
    if visibility_timeout < required:
        problems.append(
            f"the GPU queue's visibility timeout ({visibility_timeout} s) must be at least "
            f"{required} s: {1 + messages_held} x the task time limit ({task_time_limit} s) "
            f"+ {SAFETY_MARGIN_S} s margin; raise GPUORCH_VISIBILITY_TIMEOUT and run "
            f"`gpuorch provision`, or lower GPUORCH_TASK_TIME_LIMIT"
        )
    return problems


def queue_visibility_timeout(sqs_client, queue_url: str) -> int:
    attributes = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])
    return int(attributes["Attributes"]["VisibilityTimeout"])


def template_problems(services: Services) -> list[str]:
    """Why the workflow templates cannot run on the configured ComfyUI (empty: every one can).

    The same check as `gpuorch workflows check` against the live server: a template that uses a node,
    input or value the server does not have, or a model file it lacks, would fail every job that uses it.
    """
    settings = services.settings
    try:
        workflows = list(services.workflows)
        catalogue = live_catalogue(settings.comfyui_url, timeout=settings.comfyui_timeout)
    except (ConfigurationError, Unavailable) as exc:  # a malformed workflow folder; no catalogue from ComfyUI
        return [str(exc)]
    return check_templates(workflows, catalogue, settings.models).all_problems()


def model_problems(services: Services) -> list[str]:
    """Why the declared model files cannot be loaded from GPUORCH_MODELS_DIR (empty: all can, or no folder is set).

    Sizes, not hashes: gpuorch-models-sync.service ran before this worker and verified each file it put in place.
    """
    settings = services.settings
    if not settings.models_dir:
        return []
    try:
        files = model_files(services.workflows, settings.models)
    except ConfigurationError as exc:  # a malformed workflow folder or models.json
        return [str(exc)]
    return file_problems(files, Path(settings.models_dir))
