"""A loaded workflow: its template graph, declared parameters and the request schemas built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gpuorch.model_files import ModelFiles
from gpuorch.workflows.graph import Placeholder, find_placeholders
from gpuorch.workflows.models import DeclaredModel
from gpuorch.workflows.params import Param
from gpuorch.workflows.schema import WorkflowRequestSchema, request_json_schema, request_schema_class
from gpuorch.workflows.spec import ABSENT

__all__ = ["Workflow", "image_uris"]


@dataclass(frozen=True, eq=False)
class Workflow:
    """One workflow folder. ``graph`` is the template and is never modified: bind() copies it."""

    name: str
    description: str
    params: tuple[Param, ...]
    graph: Mapping[str, Any]
    folder: Path | None = None
    models: tuple[DeclaredModel, ...] = ()  # the model files it loads (models.json)

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    @property
    def image_params(self) -> tuple[Param, ...]:
        """The parameters that name input images, in binding order."""
        return tuple(p for p in self.params if p.takes_images)

    def model(self, role: str) -> DeclaredModel:
        """The model file it declares under `role`; KeyError when there is none."""
        for model in self.models:
            if model.role == role:
                return model
        raise KeyError(role)

    def model_file(self, role: str, names: ModelFiles) -> str:
        """The file name ComfyUI lists for `role`: as declared, or as its setting renames it."""
        return names.file(role, self.model(role).name)

    @property
    def model_bytes(self) -> int:
        """The bytes of every model file it loads: what an instance reads before it can run it."""
        return sum(model.bytes for model in self.models)

    @cached_property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(find_placeholders(self.graph))

    @cached_property
    def companions(self) -> frozenset[str]:
        """Parameters that bind nothing themselves and are consumed by another (a rotation's degrees)."""
        return frozenset(name for p in self.params for name in p.consumes())

    @cached_property
    def _schema_class(self) -> type[WorkflowRequestSchema]:
        return request_schema_class(self.name, self.params)

    def request_schema(self) -> WorkflowRequestSchema:
        """A marshmallow Schema validating and normalizing a request body (REST and ``task.delay``)."""
        return self._schema_class()

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the request body, one property per declared parameter."""
        return request_json_schema(self.name, self.description, self.params)

    def image_inputs(self, params: Mapping[str, Any]) -> dict[str, list[str]]:
        """Image parameter name -> the URIs a validated request gives it, in binding order."""
        return {p.name: p.image_uris(params.get(p.name, ABSENT)) for p in self.image_params if p.name in params}

    def image_uris(self, params: Mapping[str, Any]) -> list[str]:
        """Every input image URI of a validated request, in the order bind() expects their file names."""
        return image_uris(self, params)


def image_uris(workflow: Workflow, params: Mapping[str, Any]) -> list[str]:
    """Every input image URI of a validated request, in the order bind() expects their file names."""
    return [uri for p in workflow.params for uri in p.image_uris(params.get(p.name, ABSENT))]
