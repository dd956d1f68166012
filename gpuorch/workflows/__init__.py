"""Workflows as data: templates and declared parameters under configs/workflows, bound into ComfyUI graphs."""

from gpuorch.workflows.binding import bind, resolve_params
from gpuorch.workflows.camera import CameraMove, CameraMoves, load_camera_moves
from gpuorch.workflows.catalog import WorkflowCatalog, default_workflows_root, load_catalog, load_workflow
from gpuorch.workflows.check import check_workflow
from gpuorch.workflows.errors import BindError, UnknownWorkflowError, WorkflowDefinitionError, WorkflowError
from gpuorch.workflows.models import ModelFiles
from gpuorch.workflows.params import MAX_SAFE_SEED, Param, derive_seed
from gpuorch.workflows.workflow import Workflow, image_uris

__all__ = [
    "MAX_SAFE_SEED",
    "BindError",
    "CameraMove",
    "CameraMoves",
    "ModelFiles",
    "Param",
    "UnknownWorkflowError",
    "Workflow",
    "WorkflowCatalog",
    "WorkflowDefinitionError",
    "WorkflowError",
    "bind",
    "check_workflow",
    "default_workflows_root",
    "derive_seed",
    "image_uris",
    "load_camera_moves",
    "load_catalog",
    "load_workflow",
    "resolve_params",
]
