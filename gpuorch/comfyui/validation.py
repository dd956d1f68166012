"""Pure re-implementation of ComfyUI 0.8.0's prompt validation against an ``/object_info`` catalogue.

``validate_prompt`` answers what a real server would put in the 400 body of ``POST /prompt``:

    error, node_errors = validate_prompt(graph, object_info)
    if error is not None:
        body = {"error": error, "node_errors": node_errors}   # HTTP 400

It follows ``execution.validate_prompt`` / ``validate_inputs`` of ComfyUI step by step, so the error types,
messages, ``details`` strings and ``dependent_outputs`` match the recorded traces:

* ``invalid_prompt``: a node without ``class_type`` or with a class the catalogue does not know (the
  first such node, in graph order, stops validation with an empty ``node_errors``);
* ``prompt_no_outputs``: no node whose catalogue entry says ``output_node: true``;
* ``prompt_outputs_failed_validation``: every output node failed; ``node_errors[<id>]`` holds
  ``{"errors": [...], "dependent_outputs": [...], "class_type": ...}`` for each node that itself has
  errors (``required_input_missing``, ``bad_linked_input``, ``return_type_mismatch``,
  ``invalid_input_type``, ``value_smaller_than_min``, ``value_bigger_than_max``, ``value_not_in_list``,
  ``custom_validation_failed``, ``exception_during_validation``, ``exception_during_inner_validation``).

Only nodes reachable from output nodes are checked. When at least one output validates the prompt is
accepted (``error`` is ``None``) while ``node_errors`` may still describe the outputs that will be skipped,
exactly as ComfyUI answers 200 with a non-empty ``node_errors`` in that case.

The only check ComfyUI makes against the file system is the image loaders' "does this file exist" hook.
Here it is the ``file_exists`` argument; without it a file exists when the catalogue lists it, which is
what a live ``/object_info`` does for the input folder.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CUSTOM_FILE_INPUTS",
    "PromptCheck",
    "check_prompt",
    "coerce_widget_value",
    "declared_inputs",
    "validate_node_input",
    "validate_prompt",
]

FileExists = Callable[[str], bool]

# Classes whose ComfyUI implementation has a VALIDATE_INPUTS(image) hook that checks the file exists.
# For those inputs ComfyUI skips the min/max and combo checks and runs only the hook.
CUSTOM_FILE_INPUTS: Mapping[str, tuple[str, ...]] = {
    "LoadImage": ("image",),
    "LoadImageMask": ("image",),
    "LoadImageOutput": ("image",),
}

# ComfyUI trims long option lists out of error bodies (many scanned model files).
_MAX_LISTED_OPTIONS = 20


@dataclass(frozen=True)
class PromptCheck:
    """The full outcome of validating one graph.

    ``outputs`` are the output node ids that validated: ComfyUI's ``outputs_to_execute``.
    """

    error: dict[str, Any] | None
    node_errors: dict[str, dict[str, Any]]
    outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def validate_prompt(
    graph: Any,
    object_info: Mapping[str, Any],
    *,
    file_exists: FileExists | None = None,
    partial_execution_targets: Iterable[str] | None = None,
) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """Validate an API-format graph; return ``(error, node_errors)`` as a ComfyUI 400 body holds them.

    ``error`` is ``None`` when the server would accept the graph. ``object_info`` is the catalogue
    (``GET /object_info``); ``file_exists(name)`` decides whether an image loader's file exists (by default:
    the name is one of the catalogue's choices for that input). ``partial_execution_targets`` limits the
    outputs considered, like the field of the same name in a ``POST /prompt`` body.
    """
    check = check_prompt(
        graph, object_info, file_exists=file_exists, partial_execution_targets=partial_execution_targets
    )
    return check.error, check.node_errors


def check_prompt(
    graph: Any,
    object_info: Mapping[str, Any],
    *,
    file_exists: FileExists | None = None,
    partial_execution_targets: Iterable[str] | None = None,
) -> PromptCheck:
    """Like :func:`validate_prompt`, also returning the output node ids that will execute."""
    if not isinstance(graph, Mapping):
        return PromptCheck(_error("invalid_prompt", "Cannot execute because the prompt is not an object.", ""), {})
    targets = None if partial_execution_targets is None else {str(t) for t in partial_execution_targets}
    outputs: list[str] = []
    for node_id, node in graph.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            return PromptCheck(
                _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                ),
                {},
            )
        class_type = node["class_type"]
        spec = object_info.get(class_type) if isinstance(class_type, str) else None
        if spec is None:
            return PromptCheck(
                _error(
                    "invalid_prompt",
                    f"Cannot execute because node {class_type} does not exist.",
                    f"Node ID '#{node_id}'",
                ),
                {},
            )
        if spec.get("output_node") is True and (targets is None or node_id in targets):
            outputs.append(node_id)

    if not outputs:
        return PromptCheck(_error("prompt_no_outputs", "Prompt has no outputs", ""), {})

    validator = _Validator(graph, object_info, file_exists)
    good: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, dict[str, Any]] = {}
    for output_id in outputs:
        try:
            valid, reasons = validator.validate(output_id)
        except Exception as exc:  # noqa: BLE001 - mirrors ComfyUI, which reports any exception
            reasons = [_exception_reason("exception_during_validation", "Exception when validating node", exc)]
            validator.validated[output_id] = (False, reasons)
            valid = False
        if valid:
            good.append(output_id)
            continue
        failed.append((output_id, reasons))
        for node_id, (node_valid, node_reasons) in validator.validated.items():
            # A node downstream of a failing one is invalid without reasons of its own; ComfyUI leaves
            # such nodes out of node_errors.
            if node_valid or not node_reasons:
                continue
            entry = node_errors.setdefault(
                node_id,
                {"errors": node_reasons, "dependent_outputs": [], "class_type": graph[node_id]["class_type"]},
            )
            entry["dependent_outputs"].append(output_id)

    if good:
        return PromptCheck(None, node_errors, good)
    details = "\n".join(f"{r['message']}: {r['details']}" for _, reasons in failed for r in reasons)
    return PromptCheck(
        _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), node_errors
    )


def validate_node_input(received_type: Any, input_type: Any, strict: bool = False) -> bool:
    """Whether an output of ``received_type`` may feed an input of ``input_type`` (ComfyUI's rule).

    Types are equal, or comma-separated unions that intersect (all of ``received`` when ``strict``), or
    either side is the ``*`` wildcard.
    """
    if received_type == input_type:
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {t.strip() for t in received_type.split(",")}
    accepted = {t.strip() for t in input_type.split(",")}
    if "*" in received or "*" in accepted:
        return True
    if strict:
        return received.issubset(accepted)
    return bool(received & accepted)


class _Validator:
    """Per-graph state of one validation: ComfyUI's ``validated`` memo and the recursive input check."""

    def __init__(self, graph: Mapping[str, Any], object_info: Mapping[str, Any], file_exists: FileExists | None):
        self.graph = graph
        self.object_info = object_info
        self.file_exists = file_exists
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}

    def validate(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.graph[node_id]
        # A node without "inputs" or with a non-object there makes ComfyUI raise; so do we, and the
        # caller reports it as an exception during validation.
        inputs = node["inputs"]
        if not isinstance(inputs, Mapping):
            raise TypeError(f"inputs of node {node_id} must be an object, not {type(inputs).__name__}")
        class_type = node["class_type"]
        spec = self.object_info[class_type]
        custom_inputs = CUSTOM_FILE_INPUTS.get(class_type, ())
        errors: list[dict[str, Any]] = []
        valid = True

        for name, category, input_type, extra in declared_inputs(spec):
            if name not in inputs:
                if category == "required":
                    errors.append(
                        _reason("required_input_missing", "Required input is missing", name, {"input_name": name})
                    )
                continue
            value = inputs[name]
            config = [input_type, extra]
            if isinstance(value, list):
                link_ok = self._check_link(name, value, input_type, config, errors)
                if link_ok is False:
                    valid = False
                continue
            error = _check_value(name, value, input_type, extra, config, skip_range=name in custom_inputs)
            if error is not None:
                errors.append(error)

        for name in custom_inputs:
            value = inputs.get(name)
            if isinstance(value, list) or name not in inputs:
                continue
            if not self._exists(class_type, name, value):
                errors.append(
                    _reason(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        f"{name} - Invalid image file: {value}",
                        {"input_name": name},
                    )
                )

        result = (not errors and valid, errors)
        self.validated[node_id] = result
        return result

    def _check_link(
        self, name: str, value: list[Any], input_type: Any, config: list[Any], errors: list[dict[str, Any]]
    ) -> bool | None:
        """Check one linked input; return False when the linked node is invalid, None otherwise."""
        if len(value) != 2:
            errors.append(
                _reason(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                    {"input_name": name, "input_config": config, "received_value": value},
                )
            )
            return None
        source_id, slot = value
        # Indexing raises (KeyError, IndexError, TypeError) for a dangling link just as in ComfyUI; the
        # caller turns that into exception_during_(inner_)validation.
        source_class = self.graph[source_id]["class_type"]
        received_type = self.object_info[source_class]["output"][slot]
        if not validate_node_input(received_type, input_type):
            errors.append(
                _reason(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, received_type({received_type}) mismatch input_type({input_type})",
                    {"input_name": name, "input_config": config, "received_type": received_type, "linked_node": value},
                )
            )
            return None
        try:
            source_valid, _ = self.validate(source_id)
        except Exception as exc:  # noqa: BLE001 - mirrors ComfyUI's inner-validation handler
            reason = _exception_reason("exception_during_inner_validation", "Exception when validating inner node", exc)
            reason["extra_info"].update(
                {"input_name": name, "input_config": config, "exception_message": str(exc), "linked_node": value}
            )
            self.validated[source_id] = (False, [reason])
            return False
        return False if not source_valid else None

    def _exists(self, class_type: str, name: str, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        if self.file_exists is not None:
            return self.file_exists(value)
        return value in _combo_options(_input_spec(self.object_info[class_type], name))


def declared_inputs(spec: Mapping[str, Any]) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """(name, category, type, extra) for the required then optional inputs, in the catalogue's order."""
    declared = []
    order = spec.get("input_order", {})
    for category in ("required", "optional"):
        section = spec.get("input", {}).get(category) or {}
        names = [n for n in order.get(category, []) if n in section]
        names += [n for n in section if n not in names]
        for name in names:
            entry = section[name]
            extra = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            declared.append((name, category, entry[0], extra))
    return declared


def _input_spec(spec: Mapping[str, Any], name: str) -> list[Any]:
    for category in ("required", "optional"):
        section = spec.get("input", {}).get(category) or {}
        if name in section:
            return section[name]
    return []


def _combo_options(entry: list[Any]) -> list[Any]:
    if not entry:
        return []
    if isinstance(entry[0], list):
        return entry[0]
    if entry[0] == "COMBO" and len(entry) > 1 and isinstance(entry[1], dict):
        return entry[1].get("options", [])
    return []


_CONVERTERS: Mapping[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


def coerce_widget_value(value: Any, input_type: Any) -> Any:
    """The value a node receives for a widget input: unwrapped from ``{"__value__": v}``, converted to the
    primitive type (INT, FLOAT, STRING, BOOLEAN) as ComfyUI does; raises ValueError/TypeError when it cannot."""
    if isinstance(value, dict) and "__value__" in value:
        value = value["__value__"]
    convert = _CONVERTERS.get(input_type) if isinstance(input_type, str) else None
    return value if convert is None else convert(value)


def _check_value(
    name: str, value: Any, input_type: Any, extra: dict[str, Any], config: list[Any], *, skip_range: bool
) -> dict[str, Any] | None:
    """Check one widget value the way ComfyUI does: convert, then min, max, then combo membership."""
    try:
        value = coerce_widget_value(value, input_type)
    except Exception as exc:  # noqa: BLE001 - int()/float() raise ValueError or TypeError
        return _reason(
            "invalid_input_type",
            f"Failed to convert an input value to a {input_type} value",
            f"{name}, {value}, {exc}",
            {"input_name": name, "input_config": config, "received_value": value, "exception_message": str(exc)},
        )
    if skip_range:
        return None
    range_extra = {"input_name": name, "input_config": config, "received_value": value}
    # Comparing an unconvertible type with its bounds raises TypeError, reported by the caller as ComfyUI does.
    if "min" in extra and value < extra["min"]:
        return _reason("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name, range_extra)
    if "max" in extra and value > extra["max"]:
        return _reason("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name, range_extra)
    if isinstance(input_type, list) or input_type == "COMBO":
        options = input_type if isinstance(input_type, list) else extra.get("options", [])
        if extra.get("multiselect", False) and isinstance(value, list):
            invalid = [v for v in value if v not in options]
        else:
            invalid = [] if value in options else [value]
        if invalid:
            listed = len(options) <= _MAX_LISTED_OPTIONS
            return _reason(
                "value_not_in_list",
                "Value not in list",
                f"{name}: '{value}' not in {options if listed else f'(list of length {len(options)})'}",
                {"input_name": name, "input_config": config if listed else None, "received_value": value},
            )
    return None


def _error(kind: str, message: str, details: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _reason(kind: str, message: str, details: str, extra_info: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info}


def _exception_reason(kind: str, message: str, exc: BaseException) -> dict[str, Any]:
    return _reason(
        kind,
        message,
        str(exc),
        {"exception_type": _full_type_name(type(exc)), "traceback": traceback.format_tb(exc.__traceback__)},
    )


def _full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"
