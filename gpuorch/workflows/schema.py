"""Request schemas built from declared parameters: a marshmallow Schema class and a JSON Schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, validates_schema

from gpuorch.workflows.params import Param

__all__ = ["WorkflowRequestSchema", "request_json_schema", "request_schema_class"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class WorkflowRequestSchema(Schema):
    """Base of every generated request schema: unknown fields are errors, cross-field rules run last.

    ``load`` returns the normalized request (trimmed text, defaults filled in); errors are marshmallow's
    ``{field: [reasons]}`` mapping.
    """

    class Meta:
        unknown = RAISE
        register = False

    workflow_params: ClassVar[tuple[Param, ...]] = ()

    # Runs even when single fields failed, so one answer lists every problem the request has.
    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _check_across_fields(self, data: Mapping[str, Any], original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, Mapping):
            return
        errors: dict[str, list[str]] = {}
        for param in self.workflow_params:
            for name, reasons in param.request_errors(data, original_data).items():
                errors.setdefault(name, []).extend(reasons)
        if errors:
            raise ValidationError(errors)


def _class_name(workflow: str) -> str:
    return "".join(part.capitalize() for part in workflow.replace("_", "-").split("-")) + "Request"


def request_schema_class(workflow: str, params: Sequence[Param]) -> type[WorkflowRequestSchema]:
    """A Schema class named after the workflow (``CameraAngleRequest``), one field per parameter."""
    schema = WorkflowRequestSchema.from_dict({p.name: p.field() for p in params}, name=_class_name(workflow))
    schema.workflow_params = tuple(params)
    return schema


def request_json_schema(workflow: str, description: str, params: Sequence[Param]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a request body: one property per parameter, no others."""
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": _class_name(workflow),
        "description": description,
        "type": "object",
        "properties": {p.name: p.json_schema() for p in params},
        "required": [p.name for p in params if p.required],
        "additionalProperties": False,
    }
    rules = [rule for p in params for rule in p.json_schema_rules()]
    if rules:
        schema["allOf"] = rules
    return schema
