"""Declared workflow parameters: the base class and the scalar types (text, numbers, booleans, seed)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from marshmallow import fields, validate

from gpuorch.workflows.fields import StrictBoolean, StrictFloat, StrictInteger, TextLength, TrimmedString
from gpuorch.workflows.spec import ABSENT, SpecReader, Target

__all__ = [
    "MAX_SAFE_SEED",
    "BooleanParam",
    "IntegerParam",
    "NumberParam",
    "Param",
    "SeedParam",
    "StringParam",
    "derive_seed",
]

# Browsers lose integer precision above 2**53 - 1, and a seed a client cannot echo back is useless.
MAX_SAFE_SEED = 2**53 - 1


def derive_seed(seed_source: str, minimum: int = 0, maximum: int = MAX_SAFE_SEED) -> int:
    """A seed in [minimum, maximum] that depends only on ``seed_source`` (the job id).

    A redelivered job therefore binds the identical graph, which ComfyUI serves from its cache.
    """
    digest = hashlib.sha256(seed_source.encode("utf-8")).digest()
    return minimum + int.from_bytes(digest[:16], "big") % (maximum - minimum + 1)


@dataclass(frozen=True, kw_only=True)
class Param:
    """A declared request parameter: how it is validated, documented, bound and sampled.

    Each subclass is one ``type`` of params.json and reads its own keys in ``from_spec``.
    """

    kind: ClassVar[str]
    #: True when an absent value is computed at binding time rather than taken from a default.
    derives_default: ClassVar[bool] = False
    #: True when the value names input images (URIs to fetch and upload before binding).
    takes_images: ClassVar[bool] = False

    name: str
    description: str
    required: bool
    targets: tuple[Target, ...] = ()
    default: Any = ABSENT

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> Param:
        """Build from a params.json entry; ``folder`` is the workflow folder, for files it refers to."""
        raise NotImplementedError

    # Request side.

    def field(self) -> fields.Field:
        """The marshmallow field validating and normalizing this parameter."""
        options: dict[str, Any] = {"required": self.required, "metadata": {"description": self.description}}
        if self.default is not ABSENT:
            options["load_default"] = self.default
        return self._field(**options)

    def _field(self, **options: Any) -> fields.Field:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of this parameter's request property."""
        schema = {"description": self.description, **self._json_schema()}
        if self.default is not ABSENT:
            schema["default"] = self.default
        return schema

    def _json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def json_schema_rules(self) -> list[dict[str, Any]]:
        """Conditions across properties, for the request schema's ``allOf``."""
        return []

    def request_errors(self, data: Mapping[str, Any], original: Mapping[str, Any]) -> dict[str, list[str]]:
        """Errors that need other fields too; ``data`` holds the fields that were valid on their own."""
        return {}

    # Binding side.

    def resolve(self, seed_source: str) -> Any:
        """The value used when the request leaves this parameter out (ABSENT: nothing is bound)."""
        return self.default

    def image_uris(self, value: Any) -> list[str]:
        """The input images this value names, in binding order."""
        return []

    def bindings(self, value: Any, values: Mapping[str, Any], images: Sequence[str]) -> list[tuple[Target, Any]]:
        """(target, value) pairs to write; ``images`` are the uploaded names of ``image_uris(value)``."""
        if value is ABSENT:
            return []
        return [(target, value) for target in self.targets]

    def unused_nodes(self, value: Any) -> set[str]:
        """Template nodes to remove because this value leaves them unused."""
        return set()

    # Structure, for the loader and the checks.

    def consumes(self) -> tuple[str, ...]:
        """Names of other parameters whose values this one turns into its own binding."""
        return ()

    def companion_problem(self, companion: Param) -> str | None:
        """Why ``companion`` (a parameter this one consumes) cannot serve it, or None."""
        return None

    def all_targets(self) -> tuple[Target, ...]:
        return self.targets

    def referenced_nodes(self) -> set[str]:
        return {target.node for target in self.all_targets()}

    def samples(self) -> list[dict[str, Any]]:
        """Partial requests exercising this parameter; the first is the one used by default."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class StringParam(Param):
    """Text, trimmed; its length is always bounded, which keeps queue messages small."""

    kind = "string"
    max_length: int
    min_length: int = 0
    choices: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> StringParam:
        min_length = spec.take("min_length", "a non-negative integer", 0)
        max_length = spec.take("max_length", "a positive integer")
        if max_length < min_length:
            raise spec.problem("max_length is below min_length")
        return cls(
            **common,
            targets=spec.targets(),
            min_length=min_length,
            max_length=max_length,
            choices=tuple(spec.take("choices", "a non-empty list of strings", [])),
            default=spec.take("default", "a string", ABSENT),
        )

    def _field(self, **options: Any) -> fields.Field:
        checks: list[validate.Validator] = [TextLength(min=self.min_length, max=self.max_length)]
        if self.choices:
            checks.append(validate.OneOf(self.choices))
        return TrimmedString(validate=checks, **options)

    def _json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}
        if self.choices:
            schema["enum"] = list(self.choices)
        return schema

    def samples(self) -> list[dict[str, Any]]:
        if self.default is not ABSENT:
            return [{self.name: self.default}]
        if self.choices:
            return [{self.name: self.choices[0]}]
        return [{self.name: "sample"[: self.max_length].ljust(self.min_length, "x")}]


@dataclass(frozen=True, kw_only=True)
class _RangedParam(Param):
    """A number with optional bounds and choices; without ``bind`` it can only feed another parameter."""

    json_type: ClassVar[str]
    value_kind: ClassVar[str]
    choices_kind: ClassVar[str]

    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[int | float, ...] = ()

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> _RangedParam:
        minimum = spec.take("minimum", cls.value_kind, None)
        maximum = spec.take("maximum", cls.value_kind, None)
        if minimum is not None and maximum is not None and maximum < minimum:
            raise spec.problem("maximum is below minimum")
        return cls(
            **common,
            targets=spec.targets() if spec.has("bind") else (),
            minimum=minimum,
            maximum=maximum,
            choices=tuple(spec.take("choices", cls.choices_kind, [])),
            default=spec.take("default", cls.value_kind, ABSENT),
        )

    def _checks(self) -> list[validate.Validator]:
        checks: list[validate.Validator] = []
        if self.minimum is not None or self.maximum is not None:
            checks.append(validate.Range(min=self.minimum, max=self.maximum))
        if self.choices:
            checks.append(validate.OneOf(self.choices))
        return checks

    def _json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.json_type}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices:
            schema["enum"] = list(self.choices)
        return schema

    def samples(self) -> list[dict[str, Any]]:
        if self.default is not ABSENT:
            values = [self.default]
        elif self.choices:
            values = [self.choices[0]]
        else:
            values = [next((v for v in (self.minimum, self.maximum) if v is not None), 0)]
        # The bounds are sampled too, so a check finds a declared range wider than the node accepts.
        if not self.choices:
            values += [v for v in (self.minimum, self.maximum) if v is not None and v not in values]
        return [{self.name: value} for value in values]


@dataclass(frozen=True, kw_only=True)
class IntegerParam(_RangedParam):
    """A whole number (ComfyUI INT inputs, or a rotation's degrees)."""

    kind = "integer"
    json_type = "integer"
    value_kind = "an integer"
    choices_kind = "a non-empty list of integers"

    def _field(self, **options: Any) -> fields.Field:
        return StrictInteger(validate=self._checks(), **options)


@dataclass(frozen=True, kw_only=True)
class NumberParam(_RangedParam):
    """A JSON number (ComfyUI FLOAT inputs such as a denoise strength)."""

    kind = "number"
    json_type = "number"
    value_kind = "a number"
    choices_kind = "a non-empty list of numbers"

    def _field(self, **options: Any) -> fields.Field:
        return StrictFloat(validate=self._checks(), **options)


@dataclass(frozen=True, kw_only=True)
class BooleanParam(Param):
    """true or false (ComfyUI BOOLEAN inputs)."""

    kind = "boolean"

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> BooleanParam:
        return cls(**common, targets=spec.targets(), default=spec.take("default", "a boolean", ABSENT))

    def _field(self, **options: Any) -> fields.Field:
        return StrictBoolean(**options)

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def samples(self) -> list[dict[str, Any]]:
        return [{self.name: self.default if self.default is not ABSENT else False}]


@dataclass(frozen=True, kw_only=True)
class SeedParam(Param):
    """The sampler seed; when left out it is derived from the job id, so a retry binds the same graph."""

    kind = "seed"
    derives_default = True
    minimum: int = 0
    maximum: int = MAX_SAFE_SEED

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> SeedParam:
        minimum = spec.take("minimum", "a non-negative integer", 0)
        maximum = spec.take("maximum", "a non-negative integer", MAX_SAFE_SEED)
        if maximum < minimum:
            raise spec.problem("maximum is below minimum")
        return cls(**common, targets=spec.targets(), minimum=minimum, maximum=maximum)

    def _field(self, **options: Any) -> fields.Field:
        return StrictInteger(validate=validate.Range(min=self.minimum, max=self.maximum), **options)

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}

    def resolve(self, seed_source: str) -> int:
        return derive_seed(seed_source, self.minimum, self.maximum)

    def samples(self) -> list[dict[str, Any]]:
        # Left out (derived) and at its maximum, which the sampler node must accept.
        return [{}, {self.name: self.maximum}]
