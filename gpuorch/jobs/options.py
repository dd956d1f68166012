"""A job's options, given beside its workflow's parameters in one request: its priority, the deadline by which it
must have started, and how its outputs are stored (format, quality, inline). Their names are reserved: no workflow
parameter may take one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import marshmallow as ma

from gpuorch.clock import timestamp

# normal jobs start a GPU when none runs; low ones only run on a GPU that is up anyway (for normal work, or in its
# idle time before a stop), after the normal ones waiting: a queue of their own, which the GPU worker drains last.
NORMAL, LOW = "normal", "low"
PRIORITIES = (NORMAL, LOW)

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

OUTPUT, PRIORITY, DEADLINE, TTL = "output", "priority", "deadline", "ttl_seconds"
OPTION_NAMES = (PRIORITY, DEADLINE, TTL, OUTPUT)
#: Request keys that are a job's options or name what it is (a batch item's workflow, .delay()'s key): never a
#: workflow parameter's name.
RESERVED_NAMES = frozenset({*OPTION_NAMES, "workflow", "idempotency_key"})


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
    """Everything about a job beside its workflow's parameters. `deadline`: a job not started by then ends expired,
    never runs and costs nothing."""

    priority: str = NORMAL
    deadline: datetime | None = None
    output: OutputOptions = field(default_factory=OutputOptions)

    @property
    def low(self) -> bool:
        return self.priority == LOW

    def as_record(self) -> dict[str, Any]:
        """The attributes the job record keeps of them."""
        record: dict[str, Any] = {PRIORITY: self.priority, OUTPUT: self.output.as_record()}
        if self.deadline is not None:
            record[DEADLINE] = timestamp(self.deadline)
        return record


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


class _TimingSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    priority = ma.fields.String(load_default=NORMAL, validate=ma.validate.OneOf(PRIORITIES))
    deadline = ma.fields.AwareDateTime()
    ttl_seconds = ma.fields.Integer(validate=ma.validate.Range(min=1))


def parse_options(raw: Mapping[str, Any], *, now: datetime, max_ttl_s: int) -> tuple[JobOptions, dict[str, list[str]]]:
    """The options of a request submitted at `now`, and the problems of each bad one ({field: [reasons]}, dotted for
    nested ones). A deadline is at most `max_ttl_s` ahead (the record's own life), and `ttl_seconds` gives it from
    `now`."""
    errors: dict[str, list[str]] = {}
    output = OutputOptions()
    for name in sorted(set(raw) - set(OPTION_NAMES)):
        errors[name] = [f"{name} is not an option of a job request"]
    timing: dict[str, Any] = {}
    try:
        timing = _TimingSchema().load({k: v for k, v in raw.items() if k in (PRIORITY, DEADLINE, TTL)})
    except ma.ValidationError as exc:
        errors.update(exc.normalized_messages())
    deadline = timing.get(DEADLINE)
    if TTL in timing and DEADLINE in raw:
        errors[TTL] = [f"give {DEADLINE} or {TTL}, not both"]
    elif TTL in timing:
        deadline = now + timedelta(seconds=timing[TTL])
    if deadline is not None and DEADLINE not in errors and TTL not in errors:
        if deadline <= now:
            errors[DEADLINE if DEADLINE in raw else TTL] = [f"must be after now ({timestamp(now)})"]
        elif deadline > now + timedelta(seconds=max_ttl_s):
            name = DEADLINE if DEADLINE in raw else TTL
            errors[name] = [f"at most {max_ttl_s} s ahead (GPUORCH_JOB_TTL_DAYS: how long a job record is kept)"]
    if OUTPUT in raw:
        try:
            output = OutputOptionsSchema().load(raw[OUTPUT] if raw[OUTPUT] is not None else {})
        except ma.ValidationError as exc:
            messages = exc.normalized_messages()
            for key, reasons in messages.items():
                name = OUTPUT if key == "_schema" else f"{OUTPUT}.{key}"
                errors[name] = reasons if isinstance(reasons, list) else [str(reasons)]
    return JobOptions(timing.get(PRIORITY, NORMAL), deadline, output), errors


def options_json_schema() -> dict[str, Any]:
    """The JSON Schema properties of the options, as a request documents them beside the workflow's parameters."""
    return {
        PRIORITY: {
            "type": "string", "enum": list(PRIORITIES), "default": NORMAL,
            "description": "low: the job never starts a GPU by itself; it runs on a GPU that is up for other work "
                           "or in its idle time before a stop, after the normal jobs waiting.",
        },
        DEADLINE: {
            "type": "string", "format": "date-time",
            "description": "With its offset (2026-06-01T12:00:00Z). A job not started by then ends expired, never "
                           "runs and costs nothing. At most GPUORCH_JOB_TTL_DAYS ahead; not with ttl_seconds.",
        },
        TTL: {
            "type": "integer", "minimum": 1,
            "description": "The deadline as seconds from the submission.",
        },
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
