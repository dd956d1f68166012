"""Start-up checks of a GPU worker: the queue's timeouts, the declared model files, the workflow templates against
the live ComfyUI, and the warm-up; each problem says whether it may pass by itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpuorch.comfyui.client import ComfyClient
from gpuorch.comfyui.errors import ComfyError, ComfyUnavailable
from gpuorch.errors import ConfigurationError, UnknownWorkflow, Unavailable
from gpuorch.execution.warmup import warm_up, warmup_timeout
from gpuorch.modelsync.check import file_problems
from gpuorch.services import Services
from gpuorch.workflows.check import missing_models
from gpuorch.workflows.models import model_files, total_bytes
from gpuorch.workflows.preflight import NodeCatalogue, check_templates, live_catalogue

# Time allowed beyond the jobs themselves: receiving, uploading outputs, the final DynamoDB writes.
SAFETY_MARGIN_S = 30


@dataclass(frozen=True)
class Problem:
    """Why the GPU worker cannot take jobs. `may_pass`: it may go away by itself (a model file ComfyUI does not
    list yet, while the files still arrive; ComfyUI not answering, while it starts), so the worker checks again
    for a while; otherwise only a change (settings, workflows, the queue, ComfyUI's nodes) can fix it."""

    reason: str
    may_pass: bool = False


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


def template_findings(services: Services) -> tuple[list[Problem], NodeCatalogue | None]:
    """Why the workflow templates cannot run on the configured ComfyUI (empty: every one can), and the catalogue
    they were checked against (None: ComfyUI's could not be read).

    The same check as `gpuorch workflows check` against the live server: a template that uses a node,
    input or value the server does not have, or a model file it lacks, would fail every job that uses it.
    """
    settings = services.settings
    try:
        workflows = list(services.workflows)
    except ConfigurationError as exc:  # a malformed workflow folder
        return [Problem(str(exc))], None
    try:
        catalogue = live_catalogue(settings.comfyui_url, timeout=settings.comfyui_timeout)
    except Unavailable as exc:  # no catalogue from ComfyUI: it may be starting
        return [Problem(str(exc), may_pass=True)], None
    arriving = {p for workflow in workflows for p in missing_models(workflow, catalogue.object_info, settings.models)}
    problems = check_templates(workflows, catalogue, settings.models).all_problems()
    return [Problem(problem, may_pass=problem in arriving) for problem in problems], catalogue


def template_problems(services: Services) -> list[str]:
    """The reasons of `template_findings`, as `gpuorch workflows check` and the local stack print them."""
    return [problem.reason for problem in template_findings(services)[0]]


def warmup_problems(services: Services) -> list[Problem]:
    """Run the warm-up workflow (models loaded before the first job); why it failed, if it did."""
    settings = services.settings
    try:
        workflow = services.workflows.get(settings.warmup_workflow)
    except UnknownWorkflow:
        return [Problem(f"GPUORCH_WARMUP_WORKFLOW names no workflow: {settings.warmup_workflow!r}")]
    comfy = ComfyClient(settings.comfyui_url, client_id="gpuorch-warmup", timeout=settings.comfyui_timeout)
    timeout = warmup_timeout(total_bytes(model_files([workflow], settings.models)), settings.models_read_mib_s,
                             settings.task_time_limit)
    try:
        warm_up(comfy, workflow, settings.models, timeout=timeout)
    except ComfyError as exc:
        # ComfyUI going away mid-warm-up (a restart) may pass; a workflow it fails to run will not.
        return [Problem(f"warm-up with {workflow.name} failed: {type(exc).__name__}: {exc}",
                        may_pass=isinstance(exc, ComfyUnavailable))]
    return []


def model_problems(services: Services) -> list[str]:
    """Why the declared model files cannot be loaded from GPUORCH_MODELS_DIR (empty: all can, or no folder is set).

    Sizes, not hashes: gpuorch-models-sync.service ran before this worker and verified each file it put in place,
    so a file missing now will not arrive by itself.
    """
    settings = services.settings
    if not settings.models_dir:
        return []
    try:
        files = model_files(services.workflows, settings.models)
    except ConfigurationError as exc:  # a malformed workflow folder or models.json
        return [str(exc)]
    return file_problems(files, Path(settings.models_dir))
