"""Renames of model files: what a deployment's settings call a file that its workflow folder declares under another
name (a role's setting, GPUORCH_VAE ...); every other file is named as its folder declares it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ModelFiles"]


@dataclass(frozen=True)
class ModelFiles:
    """The file name configured for each role that has a setting; empty: the name the workflow folder declares.

    A workflow folder declares its model files by role (models.json), and its template refers to them by role
    (``{{models.vae}}``), never by file name: a deployment that renamed a file on its GPU instance only sets the
    role's setting. Roles without a setting (any a new workflow folder declares) keep their declared names.
    """

    diffusion_model: str = ""
    text_encoder: str = ""
    vae: str = ""
    lightning_4step_lora: str = ""
    lightning_8step_lora: str = ""
    # dx8152/Qwen-Edit-2509-Multiple-angles publishes it as 镜头转换.safetensors; installs rename it.
    camera_lora: str = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or value != value.strip() or "/" in value:
                raise ValueError(f"ModelFiles.{f.name} must be a file name without folders or surrounding spaces, "
                                 f"or empty, not {value!r}")

    @classmethod
    def renamable(cls) -> tuple[str, ...]:
        """The roles a setting may rename."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def file(self, role: str, declared: str) -> str:
        """The file name of `role`, whose workflow folder declares it as `declared`."""
        return getattr(self, role, "") or declared if role in self.renamable() else declared
