"""Workflows as data: templates and declared parameters in one folder each, bound into ComfyUI graphs."""

from gpuorch.workflows.binding import bind, resolve_params
from gpuorch.workflows.camera import CameraMove, CameraMoves, load_camera_moves
from gpuorch.workflows.folders import WorkflowSet, BUILTIN_WORKFLOWS, load_workflows, load_workflow
from gpuorch.workflows.check import check_workflow
from gpuorch.workflows.errors import BindError, UnknownWorkflow, WorkflowDefinitionError
from gpuorch.model_files import ModelFiles
from gpuorch.workflows.params import MAX_SAFE_SEED, Param, derive_seed
from gpuorch.workflows.workflow import Workflow, image_uris

__all__ = [
    "MAX_SAFE_SEED",
    "BindError",
    "CameraMove",
    "CameraMoves",
    "ModelFiles",
    "Param",
    "UnknownWorkflow",
    "Workflow",
    "WorkflowSet",
    "WorkflowDefinitionError",
    "bind",
    "check_workflow",
    "BUILTIN_WORKFLOWS",
    "derive_seed",
    "image_uris",
    "load_camera_moves",
    "load_workflows",
    "load_workflow",
    "resolve_params",
]
