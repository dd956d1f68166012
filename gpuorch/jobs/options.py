"""A job's options, given beside its workflow's parameters in one request: how its outputs are stored (format,
quality, inline). Their names are reserved: no workflow parameter may take one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma

# The output formats a job may ask for, each with its content type and file extension. PNG is what ComfyUI's
# SaveImage writes, so it is stored as it comes.
OUTPUT_FORMATS: Mapping[str, tuple[str, str]] = {
    "png": ("image/png", "png"),
    "jpeg": ("image/jpeg", "jpg"),
    "webp": ("image/webp", "webp"),
}
DEFAULT_FORMAT = "png"
LOSSY_FORMATS = ("jpeg", "webp")
# Pillow's own defaults are 75 (JPEG) and 80 (WEBP); a generated image is worth a little more.
DEFAULT_QUALITY = 90
# The most output bytes a job record carries inline, all its outputs together: base64 makes them a third larger, and
# a DynamoDB item holds 400 KB with everything else the record keeps.
MAX_INLINE_BYTES = 128 * 1024

OUTPUT = "output"
#: Request keys that are a job's options or name what it is (a batch item's workflow, .delay()'s key): never a
#: workflow parameter's name.
RESERVED_NAMES = frozenset({OUTPUT, "workflow", "idempotency_key"})


@dataclass(frozen=True)
class OutputOptions:
    """How a job's image outputs are stored: converted to `format` (with `quality`, for the lossy ones) on the GPU
    host before upload; with `inline`, each small one also goes in the record, base64."""

    format: str = DEFAULT_FORMAT
    quality: int | None = None
    inline: bool = False

    @property
    def content_type(self) -> str:
        return OUTPUT_FORMATS[self.format][0]

    @property
    def extension(self) -> str:
        return OUTPUT_FORMATS[self.format][1]

    @property
    def effective_quality(self) -> int | None:
        return (self.quality or DEFAULT_QUALITY) if self.format in LOSSY_FORMATS else None

    def as_record(self) -> dict[str, Any]:
        return {"format": self.format, "quality": self.effective_quality, "inline": self.inline}

    @classmethod
    def from_record(cls, data: Mapping[str, Any] | None) -> OutputOptions:
        if not data:
            return cls()
        return cls(data.get("format", DEFAULT_FORMAT), data.get("quality"), bool(data.get("inline", False)))


@dataclass(frozen=True)
class JobOptions:
    """Everything about a job beside its workflow's parameters."""

    output: OutputOptions = field(default_factory=OutputOptions)

    def as_record(self) -> dict[str, Any]:
        """The attributes the job record keeps of them."""
        return {OUTPUT: self.output.as_record()}


class OutputOptionsSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    format = ma.fields.String(
        load_default=DEFAULT_FORMAT, validate=ma.validate.OneOf(list(OUTPUT_FORMATS)),
        metadata={"description": "png (ComfyUI's own, the default), jpeg or webp: image outputs are converted on "
                                 "the GPU host before they are stored."},
    )
    quality = ma.fields.Integer(
        validate=ma.validate.Range(1, 100),
        metadata={"description": f"1-100, for jpeg and webp only (default {DEFAULT_QUALITY})."},
    )
    inline = ma.fields.Boolean(
        load_default=False,
        metadata={"description": f"Also put each output in the job record, base64 (inline_base64), while the job's "
                                 f"inline outputs together stay within {MAX_INLINE_BYTES} bytes."},
    )

    @ma.validates_schema
    def _quality_for_lossy_formats(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("quality") is not None and data.get("format") not in LOSSY_FORMATS:
            raise ma.ValidationError(f"only {' and '.join(LOSSY_FORMATS)} take a quality", "quality")

    @ma.post_load
    def _make(self, data: Mapping[str, Any], **_: Any) -> OutputOptions:
        return OutputOptions(**data)


def split_request(request: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the workflow's parameters, the job's options) of one request."""
    params = {name: value for name, value in request.items() if name not in RESERVED_NAMES}
    options = {name: value for name, value in request.items() if name in RESERVED_NAMES}
    return params, options


def parse_options(raw: Mapping[str, Any]) -> tuple[JobOptions, dict[str, list[str]]]:
    """The options of a request, and the problems of each bad one ({field: [reasons]}, dotted for nested ones)."""
    errors: dict[str, list[str]] = {}
    output = OutputOptions()
    for name in sorted(set(raw) - {OUTPUT}):
        errors[name] = [f"{name} is not an option of a job request"]
    if OUTPUT in raw:
        try:
            output = OutputOptionsSchema().load(raw[OUTPUT] if raw[OUTPUT] is not None else {})
        except ma.ValidationError as exc:
            messages = exc.normalized_messages()
            for key, reasons in messages.items():
                name = OUTPUT if key == "_schema" else f"{OUTPUT}.{key}"
                errors[name] = reasons if isinstance(reasons, list) else [str(reasons)]
    return JobOptions(output=output), errors


def options_json_schema() -> dict[str, Any]:
    """The JSON Schema properties of the options, as a request documents them beside the workflow's parameters."""
    return {
        OUTPUT: {
            "type": "object",
            "description": "How the job's image outputs are stored (default: PNG as ComfyUI writes them).",
            "properties": {
                "format": {"type": "string", "enum": list(OUTPUT_FORMATS), "default": DEFAULT_FORMAT},
                "quality": {"type": "integer", "minimum": 1, "maximum": 100,
                            "description": f"For jpeg and webp only (default {DEFAULT_QUALITY})."},
                "inline": {"type": "boolean", "default": False,
                           "description": f"Also put each output in the job record, base64, while the job's inline "
                                          f"outputs together stay within {MAX_INLINE_BYTES} bytes."},
            },
            "additionalProperties": False,
        },
    }
