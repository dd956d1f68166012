"""The registry of node classes the emulator can execute, and what a node function receives and returns.

A node function takes a :class:`NodeContext` and the node's inputs as keyword arguments (links already
resolved to the upstream values) and returns a :class:`NodeOutput`. Register one with ``@node("Class")``;
``image_nodes`` (real Pillow work) and ``model_nodes`` (simulated models) fill the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gpuorch_dev.emulator.storage import Storage


@dataclass
class NodeOutput:
    """A node's return values (one per catalogue output) and, for output nodes, its ``ui`` dict."""

    values: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


class NodeContext(Protocol):
    """What the executor lends a running node."""

    prompt_id: str
    node_id: str
    graph: Mapping[str, Any]
    extra_data: Mapping[str, Any]
    storage: Storage

    def progress(self, total: int) -> Iterator[int]:
        """Spend one simulated step per item, report ``progress`` frames, and stop on an interrupt."""
        ...


NodeFunction = Callable[..., NodeOutput]

_REGISTRY: dict[str, NodeFunction] = {}


class NodeNotEmulated(Exception):
    """The class is in the catalogue, but the emulator has no implementation to run for it."""

    def __init__(self, class_type: str):
        super().__init__(
            f"Node class {class_type} is listed by this ComfyUI emulator's catalogue, but the emulator cannot "
            "execute it; run this workflow on a real ComfyUI server."
        )
        self.class_type = class_type


def node(class_type: str) -> Callable[[NodeFunction], NodeFunction]:
    """Register ``function`` as the implementation of ``class_type``."""

    def register(function: NodeFunction) -> NodeFunction:
        if class_type in _REGISTRY:
            raise ValueError(f"{class_type} is registered twice")
        _REGISTRY[class_type] = function
        return function

    return register


def node_function(class_type: str) -> NodeFunction:
    """The implementation of ``class_type``; raises :class:`NodeNotEmulated` when there is none."""
    _load_implementations()
    try:
        return _REGISTRY[class_type]
    except KeyError:
        raise NodeNotEmulated(class_type) from None


def emulated_classes() -> frozenset[str]:
    """Every class the emulator can execute."""
    _load_implementations()
    return frozenset(_REGISTRY)


def _load_implementations() -> None:
    # Imported for their @node registrations; done lazily so this module stays import-cycle free.
    from gpuorch_dev.emulator import image_nodes, model_nodes  # noqa: F401
