"""The model and LoRA files the workflow templates load, named once so settings can change them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelFiles"]


def _file(default: str, folder: str) -> Any:
    # The ComfyUI models/ sub-folder is kept beside the default so the emulator and the model check
    # know which loader lists the file, without a second table to keep in step.
    return field(default=default, metadata={"folder": folder})


@dataclass(frozen=True)
class ModelFiles:
    """File names (relative to their ComfyUI models/ sub-folder) of everything the templates load.

    Templates refer to these by field name (``{{models.vae}}``), never by literal file name, so a
    deployment that renamed a file only changes a setting.
    """

    diffusion_model: str = _file("qwen_image_edit_2509_fp8_e4m3fn.safetensors", "diffusion_models")
    text_encoder: str = _file("qwen_2.5_vl_7b_fp8_scaled.safetensors", "text_encoders")
    vae: str = _file("qwen_image_vae.safetensors", "vae")
    lightning_4step_lora: str = _file("Qwen-Image-Lightning-4steps-V1.0.safetensors", "loras")
    lightning_8step_lora: str = _file("Qwen-Image-Lightning-8steps-V1.1.safetensors", "loras")
    # dx8152/Qwen-Edit-2509-Multiple-angles publishes it as 镜头转换.safetensors; installs rename it.
    camera_lora: str = _file("Qwen-Edit-2509-Multiple-angles.safetensors", "loras")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value.strip() or value != value.strip():
                raise ValueError(f"ModelFiles.{f.name} must be a file name without surrounding spaces, not {value!r}")

    @classmethod
    def roles(cls) -> tuple[str, ...]:
        """The field names, which are what a template may reference as ``{{models.<role>}}``."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def folder_of(cls, role: str) -> str:
        """The ComfyUI models/ sub-folder holding the file of ``role``."""
        for f in dataclasses.fields(cls):
            if f.name == role:
                return f.metadata["folder"]
        raise KeyError(role)

    def file(self, role: str) -> str:
        """The file name configured for ``role`` (a field name)."""
        if role not in self.roles():
            raise KeyError(role)
        return getattr(self, role)

    def by_folder(self) -> dict[str, list[str]]:
        """ComfyUI folder name -> the configured files in it, e.g. ``{"loras": [...], "vae": [...]}``."""
        folders: dict[str, list[str]] = {}
        for f in dataclasses.fields(self):
            files = folders.setdefault(f.metadata["folder"], [])
            if getattr(self, f.name) not in files:
                files.append(getattr(self, f.name))
        return folders
