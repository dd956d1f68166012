"""The model files the built-in workflows declare, as a ComfyUI holding them lists them: what test emulators hold."""

from __future__ import annotations

from gpuorch.model_files import ModelFiles
from gpuorch.workflows import load_workflows
from gpuorch.workflows.models import comfyui_folders


def builtin_file(role: str, names: ModelFiles = ModelFiles()) -> str:
    """The file name of `role` in the built-in workflows (as `names` rename it)."""
    return next(w.model_file(role, names) for w in load_workflows() if role in {m.role for m in w.models})


def builtin_folders(*without: str, names: ModelFiles = ModelFiles()) -> dict[str, list[str]]:
    """ComfyUI model folder -> the built-in workflows' files in it, less those of the roles in `without`."""
    gone = {builtin_file(role, names) for role in without}
    return {folder: [f for f in files if f not in gone]
            for folder, files in comfyui_folders(load_workflows(), names).items()}
