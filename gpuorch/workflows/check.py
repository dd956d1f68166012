"""Checking a workflow against a ComfyUI node catalogue: bind sample requests, validate as the server would."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import ValidationError

from gpuorch.comfyui.validation import validate_prompt
from gpuorch.workflows.binding import bind
from gpuorch.workflows.errors import BindError
from gpuorch.model_files import ModelFiles
from gpuorch.workflows.workflow import Workflow, image_uris

__all__ = ["check_workflow", "missing_models", "sample_image_name", "sample_requests"]


def sample_image_name(index: int) -> str:
    """The uploaded file name a check pretends input image ``index`` (from 1) received."""
    return f"gpuorch-check-{index}.png"


def check_workflow(
    workflow: Workflow, object_info: Mapping[str, Any], models: ModelFiles, *, models_known: bool
) -> list[str]:
    """Problems a ComfyUI server with catalogue ``object_info`` would have with this workflow; [] if none.

    Every sample request (see ``sample_requests``) is validated, bound and checked with ComfyUI's own
    rules. ``models_known=False`` means the catalogue's model lists say nothing (the shipped catalogue
    lists no files), so the configured files are added to them first; with ``models_known=True`` (a live
    server's catalogue) files the server lacks are reported.
    """
    problems = missing_models(workflow, object_info, models) if models_known else []
    for label, request in sample_requests(workflow):
        where = f"{workflow.name} [{label}]"
        try:
            params = workflow.request_schema().load(request)
        except ValidationError as exc:
            problems.append(f"{where}: the sample request is rejected: {exc.normalized_messages()}")
            continue
        names = [sample_image_name(i) for i in range(1, len(image_uris(workflow, params)) + 1)]
        try:
            graph = bind(workflow, params, names, models, "gpuorch-check", f"check:{workflow.name}:{label}")
        except BindError as exc:
            problems.append(f"{where}: {exc}")
            continue
        catalogue = _with_known_files(object_info, workflow, models, names)
        error, node_errors = validate_prompt(graph, catalogue)
        problems += _describe(where, error, node_errors)
    return list(dict.fromkeys(problems))


def missing_models(workflow: Workflow, object_info: Mapping[str, Any], models: ModelFiles) -> list[str]:
    """The configured model files that the catalogue's loader lists do not hold."""
    problems = []
    for placeholder in workflow.placeholders:
        role = placeholder.model_role
        if role is None:
            continue
        class_type = workflow.graph[placeholder.node]["class_type"]
        options = _combo_options(object_info.get(class_type), placeholder.input)
        # An unknown class or a non-list input is reported by the prompt validation instead.
        name = workflow.model_file(role, models)
        if options is not None and name not in options:
            problems.append(
                f"{workflow.name}: the server has no {workflow.model(role).folder} file {name!r} "
                f"({role}, loaded by node {placeholder.node} {class_type}.{placeholder.input})"
            )
    return problems


def sample_requests(workflow: Workflow) -> list[tuple[str, dict[str, Any]]]:
    """(label, request) pairs: a base request, then one variant per further sample of each parameter.

    Variants change one parameter at a time (every camera move, the fewest and most images, a seed at
    its maximum...), which covers what binding can change without multiplying the cases.
    """
    params = [p for p in workflow.params if p.name not in workflow.companions]
    base: dict[str, Any] = {}
    for param in params:
        base.update(param.samples()[0])
    requests = [("base request", base)]
    for param in params:
        owned = {param.name, *param.consumes()}
        for sample in param.samples()[1:]:
            variant = {k: v for k, v in base.items() if k not in owned} | sample
            requests.append((_label(param.name, sample), variant))
    return requests


def _label(name: str, sample: Mapping[str, Any]) -> str:
    if not sample:
        return f"{name} left out"
    return ", ".join(f"{k}={len(v)} item(s)" if isinstance(v, list) else f"{k}={v!r}" for k, v in sample.items())


def _with_known_files(
    object_info: Mapping[str, Any], workflow: Workflow, models: ModelFiles, image_names: Sequence[str]
) -> dict[str, Any]:
    """A copy of the catalogue whose loader lists also hold the configured models and sample images."""
    additions: dict[tuple[str, str], list[str]] = {}
    for placeholder in workflow.placeholders:
        if placeholder.model_role is not None:
            key = (workflow.graph[placeholder.node]["class_type"], placeholder.input)
            additions.setdefault(key, []).append(workflow.model_file(placeholder.model_role, models))
    for param in workflow.image_params:
        for target in param.all_targets():
            key = (workflow.graph[target.node]["class_type"], target.input)
            additions.setdefault(key, []).extend(image_names)

    catalogue = dict(object_info)
    for (class_type, input_name), files in additions.items():
        if class_type not in catalogue:
            continue
        spec = catalogue[class_type] = copy.deepcopy(catalogue[class_type])
        options = _combo_options(spec, input_name)
        if options is not None:
            options.extend(f for f in dict.fromkeys(files) if f not in options)
    return catalogue


def _combo_options(spec: Mapping[str, Any] | None, input_name: str) -> list[Any] | None:
    """The (mutable) option list of a combo input, in either catalogue form; None if not a combo."""
    if not isinstance(spec, Mapping):
        return None
    for category in ("required", "optional"):
        entry = (spec.get("input", {}).get(category) or {}).get(input_name)
        if not entry:
            continue
        if isinstance(entry[0], list):
            return entry[0]
        if entry[0] == "COMBO" and len(entry) > 1 and isinstance(entry[1], dict):
            options = entry[1].get("options")
            return options if isinstance(options, list) else None
        return None
    return None


def _describe(where: str, error: Mapping[str, Any] | None, node_errors: Mapping[str, Any]) -> list[str]:
    lines = [
        f"{where}: node {node_id} ({entry.get('class_type')}): {reason.get('message')}: {reason.get('details')}"
        for node_id, entry in node_errors.items()
        for reason in entry.get("errors", [])
    ]
    if error is not None and not lines:
        lines.append(f"{where}: {error.get('message')}: {error.get('details')}")
    return lines
