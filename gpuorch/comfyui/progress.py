"""Job progress from ComfyUI websocket events: one forward-only percentage and the node running now."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_STEP_WEIGHT",
    "FALLBACK_STEPS",
    "SAMPLER_TYPES",
    "Progress",
    "ProgressTracker",
    "ancestors",
    "node_weights",
    "sampler_steps",
]

Graph = Mapping[str, Mapping[str, Any]]

# Nodes that denoise and report a progress bar of one tick per step.
SAMPLER_TYPES = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"})
# A sampler step costs this many plain nodes; it only shapes the curve, so a rough figure is enough.
DEFAULT_STEP_WEIGHT = 3.0
# When a sampler's step count is fed by a link we cannot follow, assume ComfyUI's default of 20.
FALLBACK_STEPS = 20
# Following ``sigmas`` links (e.g. through SplitSigmas) stops after this many hops.
_MAX_SIGMAS_HOPS = 8


@dataclass(frozen=True)
class Progress:
    """Where a prompt stands: ``percent`` never goes back; ``step``/``steps`` only for samplers."""

    percent: int
    node_id: str | None = None
    node_type: str | None = None
    step: int | None = None
    steps: int | None = None


def _is_link(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
    )


def _inputs(graph: Graph, node_id: str) -> Mapping[str, Any]:
    node = graph.get(node_id)
    inputs = node.get("inputs") if isinstance(node, Mapping) else None
    return inputs if isinstance(inputs, Mapping) else {}


def _class_type(graph: Graph, node_id: str | None) -> str | None:
    node = graph.get(node_id) if node_id is not None else None
    return node.get("class_type") if isinstance(node, Mapping) else None


def ancestors(graph: Graph, node_id: str) -> set[str]:
    """Every node that ``node_id`` depends on through its input links (not itself)."""
    seen: set[str] = set()
    stack = [node_id]
    while stack:
        for value in _inputs(graph, stack.pop()).values():
            if _is_link(value):
                source = str(value[0])
                if source in graph and source not in seen:
                    seen.add(source)
                    stack.append(source)
    return seen


def _int_input(inputs: Mapping[str, Any], name: str) -> int | None:
    value = inputs.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def sampler_steps(graph: Graph, node_id: str) -> int | None:
    """How many steps a sampler node will run, read from the graph; None when it cannot be told.

    KSampler carries ``steps``; KSamplerAdvanced runs ``min(end_at_step, steps) - start_at_step``;
    the custom samplers take ``sigmas`` from a scheduler node (maybe through sigma filters) that
    carries ``steps``.
    """
    inputs = _inputs(graph, node_id)
    steps = _int_input(inputs, "steps")
    if steps is not None:
        start = _int_input(inputs, "start_at_step")
        end = _int_input(inputs, "end_at_step")
        if start is not None or end is not None:
            steps = min(steps, end if end is not None else steps) - (start or 0)
        return max(steps, 0)
    current = inputs
    for _ in range(_MAX_SIGMAS_HOPS):
        link = current.get("sigmas")
        if not _is_link(link):
            return None
        current = _inputs(graph, str(link[0]))
        steps = _int_input(current, "steps")
        if steps is not None:
            return max(steps, 0)
    return None


def node_weights(
    graph: Graph,
    *,
    output_nodes: Iterable[str] | None = None,
    step_weight: float = DEFAULT_STEP_WEIGHT,
    sampler_types: frozenset[str] = SAMPLER_TYPES,
) -> dict[str, float]:
    """The work each node that will run stands for.

    Every node costs one unit, except samplers, which cost ``step_weight`` units per step because
    denoising steps dominate a run's GPU time.

    ComfyUI runs only the output nodes and what they depend on; when ``output_nodes`` is not given
    every node of the graph is assumed to run (the bound graphs carry no dead nodes).
    """
    if output_nodes is None:
        planned = set(graph)
    else:
        planned = set()
        for output in output_nodes:
            if output in graph:
                planned |= {output} | ancestors(graph, output)
    weights = {}
    for node_id in planned:
        if _class_type(graph, node_id) in sampler_types:
            steps = sampler_steps(graph, node_id)
            weights[node_id] = max(1.0, (FALLBACK_STEPS if steps is None else steps) * step_weight)
        else:
            weights[node_id] = 1.0
    return weights


class ProgressTracker:
    """Turns one prompt's websocket events into a forward-only :class:`Progress`.

    Pure state, no I/O: built from the API-format graph, fed the events the client receives.

    ``feed`` takes the event type and its ``data`` and answers the new progress when it changed
    (``None`` otherwise), so a caller can forward only the changes. The percentage stays at 99
    at most until the run succeeds, so 100 always means the outputs exist.
    """

    def __init__(
        self,
        graph: Graph,
        *,
        output_nodes: Iterable[str] | None = None,
        step_weight: float = DEFAULT_STEP_WEIGHT,
        sampler_types: frozenset[str] = SAMPLER_TYPES,
    ) -> None:
        self._graph = graph
        self._weights = node_weights(
            graph, output_nodes=output_nodes, step_weight=step_weight, sampler_types=sampler_types
        )
        self._done: set[str] = set()
        self._cached: set[str] = set()
        self._partial: dict[str, float] = {}
        self._node: str | None = None
        self._step: tuple[int, int] | None = None
        self._complete = False
        self._last = Progress(percent=0)

    @property
    def progress(self) -> Progress:
        return self._last

    def complete(self) -> Progress | None:
        """Mark the run successful (100%); answers the new progress, or None if already complete."""
        self._on_success({})
        return self._emit()

    def feed(self, event_type: str, data: Mapping[str, Any] | None) -> Progress | None:
        data = data if isinstance(data, Mapping) else {}
        handler = self._HANDLERS.get(event_type)
        if handler is not None:
            handler(self, data)
        return self._emit()

    def _on_cached(self, data: Mapping[str, Any]) -> None:
        self._cached.update(str(n) for n in data.get("nodes") or () if str(n) in self._weights)

    def _on_executing(self, data: Mapping[str, Any]) -> None:
        node = data.get("node")
        if self._node is not None and self._node != node:
            self._done.add(self._node)
        self._node = None if node is None else str(node)
        self._step = None
        if self._node is not None:
            # ComfyUI runs nodes in dependency order: whatever feeds this node has finished,
            # which also recovers the frames missed while the socket was down.
            self._done |= ancestors(self._graph, self._node) & self._weights.keys()

    def _on_progress(self, data: Mapping[str, Any]) -> None:
        node = data.get("node")
        node = self._node if node is None else str(node)
        value, maximum = data.get("value"), data.get("max")
        if node is None or not isinstance(value, (int, float)) or not isinstance(maximum, (int, float)):
            return
        if maximum > 0:
            self._record_partial(node, value / maximum)
            if node == self._node or self._node is None:
                self._node = node
                self._step = (int(value), int(maximum))

    def _on_progress_state(self, data: Mapping[str, Any]) -> None:
        nodes = data.get("nodes")
        if not isinstance(nodes, Mapping):
            return
        for node_id, state in nodes.items():
            if not isinstance(state, Mapping):
                continue
            if state.get("state") == "finished":
                self._done.add(str(node_id))
            elif state.get("state") == "running":
                value, maximum = state.get("value"), state.get("max")
                if isinstance(value, (int, float)) and isinstance(maximum, (int, float)) and maximum > 0:
                    self._record_partial(str(node_id), value / maximum)
                    # The same tick as the ``progress`` frame that follows; nodes without a
                    # progress bar report 0 of 1, which is no step count.
                    if str(node_id) == self._node and maximum > 1:
                        self._step = (int(value), int(maximum))

    def _on_executed(self, data: Mapping[str, Any]) -> None:
        if data.get("node") is not None:
            self._done.add(str(data["node"]))

    def _on_success(self, data: Mapping[str, Any]) -> None:
        self._complete = True
        self._node = None
        self._step = None

    def _on_stopped(self, data: Mapping[str, Any]) -> None:
        self._node = None
        self._step = None

    _HANDLERS = {
        "execution_cached": _on_cached,
        "executing": _on_executing,
        "progress": _on_progress,
        "progress_state": _on_progress_state,
        "executed": _on_executed,
        "execution_success": _on_success,
        "execution_error": _on_stopped,
        "execution_interrupted": _on_stopped,
    }

    def _record_partial(self, node_id: str, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        self._partial[node_id] = max(self._partial.get(node_id, 0.0), fraction)

    def _percent(self) -> int:
        if self._complete:
            return 100
        remaining = {n: w for n, w in self._weights.items() if n not in self._cached}
        total = sum(remaining.values())
        if total <= 0:
            return 0
        done = sum(
            weight * (1.0 if node in self._done else self._partial.get(node, 0.0))
            for node, weight in remaining.items()
        )
        return min(99, math.floor(100 * done / total))

    def _emit(self) -> Progress | None:
        step, steps = self._step if self._step is not None else (None, None)
        current = Progress(
            percent=max(self._last.percent, self._percent()),
            node_id=self._node,
            node_type=_class_type(self._graph, self._node),
            step=step,
            steps=steps,
        )
        if current == self._last:
            return None
        self._last = current
        return current
