"""Loading workflows: one folder per workflow (graph.json, params.json, models.json), checked on load."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from gpuorch.jobs.options import RESERVED_NAMES
from gpuorch.workflows.camera import CameraMoveParam
from gpuorch.workflows.errors import UnknownWorkflow, WorkflowDefinitionError
from gpuorch.workflows.graph import OUTPUT_PREFIX, find_placeholders, is_link, structure_problems
from gpuorch.workflows.image_params import ImageListParam, ImageParam
from gpuorch.workflows.models import MODELS_FILE, DeclaredModel, parse_models
from gpuorch.workflows.params import BooleanParam, IntegerParam, NumberParam, Param, SeedParam, StringParam
from gpuorch.workflows.spec import ABSENT, SpecReader
from gpuorch.workflows.workflow import Workflow

__all__ = [
    "GRAPH_FILE",
    "MODELS_FILE",
    "PARAMS_FILE",
    "PARAM_TYPES",
    "WorkflowSet",
    "BUILTIN_WORKFLOWS",
    "load_workflows",
    "load_workflow",
    "parse_param",
]

log = logging.getLogger(__name__)

GRAPH_FILE = "graph.json"
PARAMS_FILE = "params.json"

# Workflow names appear in URLs (/api/v1/<name>/jobs) and task arguments.
_WORKFLOW_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

PARAM_TYPES: Mapping[str, type[Param]] = {
    cls.kind: cls
    for cls in (
        StringParam,
        IntegerParam,
        NumberParam,
        BooleanParam,
        SeedParam,
        ImageParam,
        ImageListParam,
        CameraMoveParam,
    )
}


# The workflows that ship with gpuorch (package data): the default of GPUORCH_WORKFLOWS_DIR.
BUILTIN_WORKFLOWS = Path(__file__).resolve().parent / "builtin"


class WorkflowSet:
    """The loaded workflows by name. ``get`` and ``[]`` raise UnknownWorkflow (a KeyError)."""

    def __init__(self, workflows: Iterable[Workflow]):
        self._by_name: dict[str, Workflow] = {}
        for workflow in workflows:
            if workflow.name in self._by_name:
                raise ValueError(f"two workflows are named {workflow.name!r}")
            self._by_name[workflow.name] = workflow

    def get(self, name: str) -> Workflow:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownWorkflow(name, self.names()) from None

    __getitem__ = get

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Workflow]:
        return iter(self._by_name[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"WorkflowSet({self.names()})"


def load_workflows(root: Path | str | None = None) -> WorkflowSet:
    """Load every workflow folder under ``root`` (default: the built-in workflows).

    A folder that is not a valid workflow raises WorkflowDefinitionError naming the file and the
    problem: a broken definition must stop a process at start, not fail a job later.
    """
    root = BUILTIN_WORKFLOWS if not root else Path(root)
    if not root.is_dir():
        raise WorkflowDefinitionError(root, "not a directory of workflow folders")
    # Hidden and private folders (.git, __pycache__) are not workflows.
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not folders:
        raise WorkflowDefinitionError(root, "holds no workflow folders")
    workflows = WorkflowSet(load_workflow(folder) for folder in folders)
    log.info("loaded workflows %s from %s", ", ".join(workflows.names()), root)
    return workflows


def load_workflow(folder: Path) -> Workflow:
    """Load and check one workflow folder; its name is the folder's name."""
    folder = Path(folder)
    if not _WORKFLOW_NAME.fullmatch(folder.name):
        raise WorkflowDefinitionError(folder, "a workflow folder name is lower-case words joined by '-'")
    graph_path, params_path = folder / GRAPH_FILE, folder / PARAMS_FILE
    graph = _read_json(graph_path)
    problems = structure_problems(graph)
    if problems:
        raise WorkflowDefinitionError(graph_path, "; ".join(problems))
    _check_placeholders(graph, graph_path)
    models = _read_models(folder, graph)

    declaration = _read_json(params_path)
    if not isinstance(declaration, dict):
        raise WorkflowDefinitionError(params_path, 'expected an object {"description": ..., "params": [...]}')
    top = SpecReader(declaration, "top level")
    try:
        description = top.take("description", "a non-empty string")
        entries = top.take("params", "a non-empty list")
        top.finish()
        params = tuple(parse_param(entry, f"params[{i}]", folder) for i, entry in enumerate(entries))
        _check_params(params, graph)
    except ValueError as exc:
        raise WorkflowDefinitionError(params_path, str(exc)) from None
    return Workflow(name=folder.name, description=description, params=params, graph=graph, folder=folder,
                    models=models)


def _read_models(folder: Path, graph: dict[str, Any]) -> tuple[DeclaredModel, ...]:
    """The model files the folder declares; a graph that loads models must declare them (models.json)."""
    path = folder / MODELS_FILE
    loaded = sorted({p.model_role for p in find_placeholders(graph) if p.model_role is not None})
    if not path.exists() and not loaded:
        return ()
    if not path.exists():
        raise WorkflowDefinitionError(
            path, f"file not found: graph.json loads {', '.join(loaded)}; declare each model file here "
                  "(name, folder, bytes, sha256, source)")
    return parse_models(_read_json(path), path, loaded)


def parse_param(data: Any, where: str, folder: Path) -> Param:
    """Build one parameter from its params.json entry; ValueError names the entry and the problem."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    spec = SpecReader(data, where)
    name = spec.take("name", "a parameter name (lower_case)")
    spec.where = f"{where} ({name})"
    if name in RESERVED_NAMES:
        # A request gives a job's options beside its parameters, under these names.
        raise spec.problem(f"{name!r} is reserved for a job's options; reserved: {', '.join(sorted(RESERVED_NAMES))}")
    kind = spec.take("type", "a string")
    cls = PARAM_TYPES.get(kind)
    if cls is None:
        raise spec.problem(f"unknown type {kind!r}; known: {', '.join(PARAM_TYPES)}")
    common = {
        "name": name,
        "description": spec.take("description", "a non-empty string"),
        "required": spec.take("required", "a boolean", False),
    }
    param = cls.from_spec(spec, folder, **common)
    spec.finish()
    if param.required and param.default is not ABSENT:
        raise spec.problem("a required parameter cannot have a default")
    if not param.required and param.targets and param.default is ABSENT and not param.derives_default:
        raise spec.problem("an optional parameter that binds needs a default")
    if param.default is not ABSENT:
        try:
            param.field().deserialize(param.default)
        except ValidationError as exc:
            raise spec.problem(f"the default {param.default!r} is not valid: {exc.messages}") from None
    return param


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkflowDefinitionError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowDefinitionError(path, f"not readable JSON: {exc}") from None


def _check_placeholders(graph: dict[str, Any], path: Path) -> None:
    # {{models.<role>}}: a model file the folder declares under that role (models.json, checked when read).
    found = find_placeholders(graph)
    for placeholder in found:
        if placeholder.key != OUTPUT_PREFIX and placeholder.model_role is None:
            raise WorkflowDefinitionError(
                path,
                f"node {placeholder.node} input {placeholder.input!r}: unknown placeholder "
                f"{{{{{placeholder.key}}}}}; known: {{{{{OUTPUT_PREFIX}}}}}, {{{{models.<role>}}}}",
            )
    if not any(p.key == OUTPUT_PREFIX for p in found):
        raise WorkflowDefinitionError(path, f"no output node carries the {{{{{OUTPUT_PREFIX}}}}} placeholder")


# A request's own fields beside the workflow's parameters (where its webhook goes: gpuorch.webhooks.events).
REQUEST_FIELDS = ("webhook", "webhook_events")


def _check_params(params: tuple[Param, ...], graph: Mapping[str, Any]) -> None:
    """Cross-parameter rules: unique names, none a request field, targets that exist, every parameter bound or
    consumed."""
    by_name: dict[str, Param] = {}
    for param in params:
        if param.name in REQUEST_FIELDS:
            raise ValueError(f"parameter {param.name!r}: the name is a request's own field "
                             f"({', '.join(REQUEST_FIELDS)})")
        if param.name in by_name:
            raise ValueError(f"parameter {param.name!r} is declared twice")
        by_name[param.name] = param

    claimed: dict[tuple[str, str], str] = {}
    for param in params:
        for node in sorted(param.referenced_nodes()):
            if node not in graph:
                raise ValueError(f"{param.name}: node {node} is not in graph.json")
        for target in param.all_targets():
            inputs = graph[target.node]["inputs"]
            if target.input not in inputs:
                # The template carries a sample value at every target, so the graph reads complete.
                raise ValueError(f"{param.name}: {target} is not in graph.json (give it a sample value there)")
            value = inputs[target.input]
            if is_link(value) or (isinstance(value, str) and value.strip().startswith("{{")):
                raise ValueError(f"{param.name}: {target} holds a link or placeholder; a parameter cannot bind there")
            other = claimed.setdefault((target.node, target.input), param.name)
            if other != param.name:
                raise ValueError(f"{param.name}: {target} is already bound by {other!r}")

    consumed = {name: param for param in params for name in param.consumes()}
    for name, consumer in consumed.items():
        companion = by_name.get(name)
        if companion is None:
            raise ValueError(f"{consumer.name}: refers to parameter {name!r}, which is not declared")
        if companion.required or companion.default is not ABSENT or companion.all_targets():
            raise ValueError(f"{name}: consumed by {consumer.name!r}, so it must be optional, without default or bind")
        problem = consumer.companion_problem(companion)
        if problem:
            raise ValueError(f"{name}: {problem}")
    for param in params:
        if not param.all_targets() and param.name not in consumed:
            raise ValueError(f"{param.name}: binds nowhere; give it a 'bind' list")

