"""Graph decisions for one prompt: which nodes run, in what order, and which are served from the cache.

Caching follows ComfyUI's default ("classic") cache: a node's signature is its class, its widget values,
its file's content for image loaders, and the signatures of everything upstream; outputs are kept only
for the nodes of the latest prompt, so resubmitting an identical graph runs nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpuorch_dev.emulator.storage import PathOutsideFolder, Storage

# Loaders whose output depends on a file's bytes, not only on its name (ComfyUI's IS_CHANGED hashes it).
FILE_INPUTS: Mapping[str, tuple[str, str]] = {
    "LoadImage": ("image", "input"),
    "LoadImageMask": ("image", "input"),
    "LoadImageOutput": ("image", "output"),
}


@dataclass(frozen=True)
class CachedNode:
    values: tuple[Any, ...]
    ui: dict[str, Any] | None


@dataclass(frozen=True)
class ExecutionPlan:
    """``order``: nodes to execute, dependencies first; ``cached``: nodes served from the cache (graph
    order); ``all_nodes``: every node the outputs need; ``signatures``: cache key per needed node."""

    order: list[str]
    cached: list[str]
    all_nodes: list[str]
    signatures: dict[str, str]


class OutputCache:
    """Signature -> node outputs, pruned to the current prompt's nodes at each plan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, CachedNode] = {}

    def get(self, signature: str) -> CachedNode:
        with self._lock:
            return self._entries[signature]

    def __contains__(self, signature: str) -> bool:
        with self._lock:
            return signature in self._entries

    def put(self, signature: str, node: CachedNode) -> None:
        with self._lock:
            self._entries[signature] = node

    def keep_only(self, signatures: set[str]) -> None:
        with self._lock:
            self._entries = {key: value for key, value in self._entries.items() if key in signatures}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class DependencyCycle(Exception):
    """The graph's links form a cycle, so it has no execution order."""


def links(node: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """``(input name, source node id, output slot)`` for each linked input of ``node``."""
    found = []
    for name, value in (node.get("inputs") or {}).items():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
            found.append((name, str(value[0]), value[1]))
    return found


def needed_nodes(graph: Mapping[str, Any], outputs: list[str]) -> list[str]:
    """Every node the ``outputs`` depend on (themselves included), in graph order."""
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        stack.extend(source for _, source, _ in links(graph[node_id]))
    return [node_id for node_id in graph if node_id in seen]


def signatures(graph: Mapping[str, Any], node_ids: list[str], file_digest: Any) -> dict[str, str]:
    """Cache signature of each node; ``file_digest(class_type, inputs)`` gives a loader's file identity."""
    memo: dict[str, str] = {}

    def signature(node_id: str, visiting: frozenset[str]) -> str:
        if node_id in memo:
            return memo[node_id]
        if node_id in visiting:
            raise DependencyCycle(f"Dependency cycle detected at node {node_id}")
        node = graph[node_id]
        inputs = {}
        for name, value in sorted((node.get("inputs") or {}).items()):
            is_link = isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
            inputs[name] = ["link", signature(str(value[0]), visiting | {node_id}), value[1]] if is_link else value
        payload = [node["class_type"], file_digest(node["class_type"], node.get("inputs") or {}), inputs]
        memo[node_id] = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        return memo[node_id]

    return {node_id: signature(node_id, frozenset()) for node_id in node_ids}


def execution_order(graph: Mapping[str, Any], outputs: list[str], skip: set[str]) -> list[str]:
    """Dependencies-first order of the nodes ``outputs`` need, not descending into ``skip`` (cached) nodes."""
    order: list[str] = []
    done: set[str] = set(skip)

    def visit(node_id: str, visiting: frozenset[str]) -> None:
        if node_id in done:
            return
        if node_id in visiting:
            raise DependencyCycle(f"Dependency cycle detected at node {node_id}")
        for _, source, _ in links(graph[node_id]):
            visit(source, visiting | {node_id})
        done.add(node_id)
        order.append(node_id)

    for output_id in outputs:
        visit(output_id, frozenset())
    return order


def execution_plan(graph: Mapping[str, Any], outputs: list[str], storage: Storage, cache: OutputCache) -> ExecutionPlan:
    """Decide what runs for a validated prompt, and prune ``cache`` to this prompt's nodes."""

    def file_digest(class_type: str, inputs: Mapping[str, Any]) -> str:
        if class_type not in FILE_INPUTS:
            return ""
        input_name, default_kind = FILE_INPUTS[class_type]
        try:
            path = storage.annotated_path(str(inputs.get(input_name, "")), default_kind)
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except (OSError, PathOutsideFolder):
            return "missing"

    all_nodes = needed_nodes(graph, outputs)
    keys = signatures(graph, all_nodes, file_digest)
    cache.keep_only(set(keys.values()))
    cached = [node_id for node_id in all_nodes if keys[node_id] in cache]
    order = execution_order(graph, outputs, set(cached))
    return ExecutionPlan(order, cached, all_nodes, keys)


def format_input(value: Any) -> Any:
    """How ComfyUI shows an input value in ``execution_error.current_inputs``."""
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)
