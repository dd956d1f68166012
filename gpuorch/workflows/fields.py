"""Marshmallow fields for workflow requests: strict JSON types, trimmed text and image URIs."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from gpuorch.workflows.uris import IMAGE_URI_JSON_SCHEMA, image_uri_problem

__all__ = ["ImageUri", "ImageUriList", "StrictBoolean", "StrictFloat", "StrictInteger", "TextLength", "TrimmedString"]


class TrimmedString(fields.String):
    """A string with surrounding white space removed before the length and choice checks run."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class TextLength(validate.Length):
    """Length bounds with messages a person reads at once ("Must not be blank.")."""

    def __call__(self, value: str) -> str:
        if self.min and not value:
            raise ValidationError("Must not be blank.")
        if self.min is not None and len(value) < self.min:
            raise ValidationError(f"Shorter than {self.min} characters.")
        if self.max is not None and len(value) > self.max:
            raise ValidationError(f"Longer than {self.max} characters.")
        return value


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, no floats (marshmallow already refuses booleans)."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)


class StrictFloat(fields.Float):
    """A JSON number; a string that looks like one is refused, as a typed API should."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class StrictBoolean(fields.Boolean):
    """JSON true or false only; marshmallow's default also takes "yes", 1 and friends."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class ImageUri(fields.String):
    """An ``s3://bucket/key`` or ``https://...`` URI; only its syntax is checked."""

    def __init__(self, **kwargs: Any):
        # apispec copies OpenAPI keywords found in metadata, so the generated document shows the format.
        metadata = {k: v for k, v in IMAGE_URI_JSON_SCHEMA.items() if k != "type"} | kwargs.pop("metadata", {})
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        uri = super()._deserialize(value, attr, data, **kwargs)
        problem = image_uri_problem(uri)
        if problem is not None:
            raise ValidationError(f"Not a valid image URI: {problem}.")
        return uri


class ImageUriList(fields.List):
    """A list of image URIs whose errors come out flat: ``["Item 2: ..."]``, not keyed by index.

    Every field of a workflow request then reports a plain list of reasons, which is what the REST
    error body and the Python caller both expect.
    """

    def __init__(self, *, min_items: int, max_items: int, **kwargs: Any):
        # The Length validator never fails after _deserialize's own count check; it is there so
        # OpenAPI generators (apispec) document minItems/maxItems.
        super().__init__(ImageUri(), validate=validate.Length(min=min_items, max=max_items), **kwargs)
        self.min_items = min_items
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        # A lone string is a collection of characters to marshmallow; refuse it as the wrong type.
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValidationError("Not a valid list of image URIs.")
        if not self.min_items <= len(value) <= self.max_items:
            raise ValidationError(self._count_message(len(value)))
        uris, reasons = [], []
        for index, item in enumerate(value, start=1):
            try:
                uris.append(self.inner.deserialize(item))
            except ValidationError as exc:
                reasons.extend(f"Item {index}: {message}" for message in _flatten(exc.messages))
        if reasons:
            raise ValidationError(reasons)
        return uris

    def _count_message(self, count: int) -> str:
        if self.min_items == self.max_items:
            return f"Must hold exactly {self.min_items} image(s), not {count}."
        return f"Must hold between {self.min_items} and {self.max_items} images, not {count}."


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flatten(value)]
    return [m for value in messages for m in _flatten(value)]
