"""Pure helpers over ComfyUI API-format graphs: links, placeholders, structure checks, cutting nodes."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["OUTPUT_PREFIX", "Placeholder", "find_placeholders", "is_link", "remove_nodes", "structure_problems"]

#: The placeholder the SaveImage-like nodes carry where the job's output prefix goes.
OUTPUT_PREFIX = "output_prefix"
_MODELS = "models."
_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")
_NODE_KEYS = {"class_type", "inputs", "_meta"}


def is_link(value: Any) -> bool:
    """Whether an input value is a link ``[node_id, output_index]`` (ComfyUI treats any list as one)."""
    return isinstance(value, list)


def _well_formed_link(value: list[Any]) -> bool:
    return len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int and value[1] >= 0


@dataclass(frozen=True)
class Placeholder:
    """An input whose whole value is ``{{key}}``, filled at binding time (a model file, the output prefix)."""

    node: str
    input: str
    key: str

    @property
    def model_role(self) -> str | None:
        """The role named by a ``{{models.<role>}}`` placeholder (a model file its folder declares), else None."""
        return self.key[len(_MODELS):] if self.key.startswith(_MODELS) else None


def _inputs(graph: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for node_id, node in graph.items():
        for name, value in node["inputs"].items():
            yield node_id, name, value


def find_placeholders(graph: Mapping[str, Any]) -> list[Placeholder]:
    """Every ``{{key}}`` input of a structurally valid graph, in graph order."""
    found = []
    for node_id, name, value in _inputs(graph):
        if isinstance(value, str):
            match = _PLACEHOLDER.fullmatch(value.strip())
            if match:
                found.append(Placeholder(node_id, name, match.group(1).strip()))
    return found


def structure_problems(graph: Any) -> list[str]:
    """What makes ``graph`` unusable as an API-format template, independent of any node catalogue."""
    if not isinstance(graph, dict) or not graph:
        return ["the graph must be a non-empty object of nodes"]
    problems = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) or not node["class_type"]:
            problems.append(f"node {node_id}: needs a class_type string")
            continue
        if not isinstance(node.get("inputs"), dict):
            problems.append(f"node {node_id}: needs an inputs object")
            continue
        extra = set(node) - _NODE_KEYS
        if extra:
            problems.append(f"node {node_id}: unknown key(s) {sorted(extra)}")
        for name, value in node["inputs"].items():
            if not is_link(value):
                continue
            if not _well_formed_link(value):
                problems.append(f"node {node_id} input {name!r}: a link must be [node_id, output_index], not {value!r}")
            elif value[0] not in graph:
                problems.append(f"node {node_id} input {name!r}: links to missing node {value[0]}")
    if not problems:
        problems += _cycle_problems(graph)
    return problems


def _cycle_problems(graph: Mapping[str, Any]) -> list[str]:
    # Iterative depth-first search: ComfyUI itself only notices a cycle when it executes the graph.
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in graph:
        if start in state:
            continue
        stack = [(start, iter(_sources(graph, start)))]
        state[start] = 1
        while stack:
            node_id, pending = stack[-1]
            source = next(pending, None)
            if source is None:
                state[node_id] = 2
                stack.pop()
            elif state.get(source) == 1:
                return [f"node {source}: is part of a cycle of links"]
            elif source not in state:
                state[source] = 1
                stack.append((source, iter(_sources(graph, source))))
    return []


def _sources(graph: Mapping[str, Any], node_id: str) -> list[str]:
    return [value[0] for value in graph[node_id]["inputs"].values() if is_link(value)]


def remove_nodes(graph: dict[str, Any], node_ids: set[str]) -> None:
    """Delete ``node_ids`` from ``graph`` in place, and every input elsewhere that links to them."""
    for node_id in node_ids:
        graph.pop(node_id, None)
    for node in graph.values():
        inputs = node["inputs"]
        for name in [n for n, value in inputs.items() if is_link(value) and value[0] in node_ids]:
            del inputs[name]
