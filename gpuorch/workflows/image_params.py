"""Image parameters: URIs in the request, uploaded file names in the graph, unused slots cut out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import fields

from gpuorch.aws.s3 import S3Uri
from gpuorch.workflows.fields import ImageUri, ImageUriList
from gpuorch.workflows.params import Param
from gpuorch.workflows.spec import ABSENT, SpecReader, Target
from gpuorch.workflows.uris import IMAGE_URI_JSON_SCHEMA

__all__ = ["ImageListParam", "ImageParam", "ImageSlot", "sample_image_uri"]


def sample_image_uri(index: int) -> str:
    """A syntactically valid image URI for workflow checks (never fetched)."""
    return str(S3Uri("gpuorch-check", f"sample-{index}.png"))


@dataclass(frozen=True, kw_only=True)
class ImageParam(Param):
    """One input image, given as a URI; bound to the name ComfyUI gave the uploaded file."""

    kind = "image"
    takes_images = True

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> ImageParam:
        if not common["required"]:
            raise spec.problem("an image parameter must be required (use image_list for optional images)")
        return cls(**common, targets=spec.targets())

    def _field(self, **options: Any) -> fields.Field:
        return ImageUri(**options)

    def _json_schema(self) -> dict[str, Any]:
        return dict(IMAGE_URI_JSON_SCHEMA)

    def image_uris(self, value: Any) -> list[str]:
        return [] if value is ABSENT else [value]

    def bindings(self, value: Any, values: Mapping[str, Any], images: Sequence[str]) -> list[tuple[Target, Any]]:
        return [(target, images[0]) for target in self.targets] if images else []

    def samples(self) -> list[dict[str, Any]]:
        return [{self.name: sample_image_uri(1)}]


@dataclass(frozen=True)
class ImageSlot:
    """One place for an image of a list: where its name binds, and the nodes dropped when it is unused."""

    targets: tuple[Target, ...]
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ImageListParam(Param):
    """Between min_items and max_items images; the slots past the images given are cut out of the graph.

    Cutting a slot removes its ``nodes`` and every link to them, so an optional input fed by the slot
    (``image2`` of the text encoder) simply disappears and the graph stays valid.
    """

    kind = "image_list"
    takes_images = True
    min_items: int
    slots: tuple[ImageSlot, ...]

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> ImageListParam:
        if not common["required"]:
            raise spec.problem("an image_list parameter must be required (min_items sets how few images)")
        min_items = spec.take("min_items", "a positive integer")
        max_items = spec.take("max_items", "a positive integer")
        if max_items < min_items:
            raise spec.problem("max_items is below min_items")
        slots = []
        for index, entry in enumerate(spec.take("slots", "a non-empty list"), start=1):
            if not isinstance(entry, dict):
                raise spec.problem(f"slots[{index}] must be an object")
            slot_spec = SpecReader(entry, f"{spec.where} slots[{index}]")
            nodes = tuple(slot_spec.take("nodes", "a list of node ids", []))
            slot = ImageSlot(targets=slot_spec.targets(), nodes=nodes)
            slot_spec.finish()
            # An optional slot's loader must go with it: left in, it would name a file never uploaded.
            if index > min_items and not {t.node for t in slot.targets} <= set(slot.nodes):
                raise slot_spec.problem("an optional slot's 'nodes' must include every node it binds")
            slots.append(slot)
        if len(slots) != max_items:
            raise spec.problem(f"declares {len(slots)} slot(s) for max_items {max_items}")
        return cls(**common, min_items=min_items, slots=tuple(slots))

    @property
    def max_items(self) -> int:
        return len(self.slots)

    def _field(self, **options: Any) -> fields.Field:
        return ImageUriList(min_items=self.min_items, max_items=self.max_items, **options)

    def _json_schema(self) -> dict[str, Any]:
        return {
            "type": "array",
            "items": dict(IMAGE_URI_JSON_SCHEMA),
            "minItems": self.min_items,
            "maxItems": self.max_items,
        }

    def image_uris(self, value: Any) -> list[str]:
        return [] if value is ABSENT else list(value)

    def bindings(self, value: Any, values: Mapping[str, Any], images: Sequence[str]) -> list[tuple[Target, Any]]:
        return [(target, name) for slot, name in zip(self.slots, images) for target in slot.targets]

    def unused_nodes(self, value: Any) -> set[str]:
        used = 0 if value is ABSENT else len(value)
        return {node for slot in self.slots[used:] for node in slot.nodes}

    def all_targets(self) -> tuple[Target, ...]:
        return tuple(target for slot in self.slots for target in slot.targets)

    def referenced_nodes(self) -> set[str]:
        return super().referenced_nodes() | {node for slot in self.slots for node in slot.nodes}

    def samples(self) -> list[dict[str, Any]]:
        counts = [self.max_items] + ([self.min_items] if self.min_items != self.max_items else [])
        return [{self.name: [sample_image_uri(i) for i in range(1, n + 1)]} for n in counts]
