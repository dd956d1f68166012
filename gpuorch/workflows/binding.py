"""Binding: a workflow template plus a validated request becomes the graph posted to ComfyUI."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from gpuorch.workflows.errors import BindError
from gpuorch.workflows.graph import OUTPUT_PREFIX, remove_nodes
from gpuorch.model_files import ModelFiles
from gpuorch.workflows.spec import ABSENT
from gpuorch.workflows.workflow import Workflow, image_uris

__all__ = ["bind", "resolve_params"]


def resolve_params(workflow: Workflow, params: Mapping[str, Any], seed_source: str) -> dict[str, Any]:
    """The request with every absent parameter given its default or derived value (seed from the job id).

    Parameters that are absent and have neither stay out of the result.
    """
    unknown = sorted(set(params) - {p.name for p in workflow.params})
    if unknown:
        raise BindError(f"{workflow.name}: unknown parameter(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for param in workflow.params:
        value = params[param.name] if param.name in params else param.resolve(seed_source)
        if value is not ABSENT:
            values[param.name] = value
    return values


def bind(
    workflow: Workflow,
    params: Mapping[str, Any],
    image_names: Sequence[str],
    models: ModelFiles,
    output_prefix: str,
    seed_source: str,
) -> dict[str, Any]:
    """The API-format graph to post for a validated request; the template itself is never changed.

    ``image_names`` are the names ComfyUI returned when the images of ``image_uris(workflow, params)``
    were uploaded, in that order. ``seed_source`` (the job id) seeds an absent seed, so binding the
    same job twice gives the identical graph. The same inputs always give the same graph.
    """
    if not isinstance(output_prefix, str) or not output_prefix.strip():
        raise BindError("output_prefix must be a non-empty string")
    values = resolve_params(workflow, params, seed_source)
    expected = len(image_uris(workflow, values))
    if len(image_names) != expected:
        raise BindError(f"{workflow.name}: the request names {expected} image(s) but {len(image_names)} were given")

    graph = copy.deepcopy(dict(workflow.graph))
    for placeholder in workflow.placeholders:
        role = placeholder.model_role
        value = output_prefix if placeholder.key == OUTPUT_PREFIX else workflow.model_file(role, models)
        graph[placeholder.node]["inputs"][placeholder.input] = value

    unused: set[str] = set()
    offset = 0
    for param in workflow.params:
        value = values.get(param.name, ABSENT)
        count = len(param.image_uris(value))
        names = list(image_names[offset : offset + count])
        offset += count
        for target, bound in param.bindings(value, values, names):
            graph[target.node]["inputs"][target.input] = bound
        unused |= param.unused_nodes(value)
    remove_nodes(graph, unused)
    return graph
