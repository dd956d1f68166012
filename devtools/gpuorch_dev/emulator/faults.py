"""Injected faults as data: strict parsing of fault bodies, and the pure rules of where they fire and what they refuse.

A fault body names its ``kind`` and, optionally, where it fires::

    {"kind": "hang", "at_node_class": "KSampler", "at_step": 2}
    {"kind": "execution_error", "at_node_class": "KSampler", "exception_type": "torch.OutOfMemoryError"}
    {"kind": "restart", "for_s": 2, "refuse_with": "close"}
    {"kind": "drop_websockets", "for_requests": 3}
    {"kind": "unavailable", "for_s": 5}

``when`` is ``"now"`` (fire while answering the POST) or ``"in_prompt"`` (fire when a running prompt reaches
the point the selectors name). Selectors: ``prompt_id``, ``at_node_class``, ``at_node_id`` (null: any) and
``at_step`` (null: before the node runs; N: at its progress step N). ``times`` is how often the fault fires
before it disarms (null: until cleared). ``hang`` and ``execution_error`` only fire in a prompt; the others
fire now unless a selector is given. ``for_s`` / ``for_requests`` bound the refusals that ``unavailable``,
``restart`` and ``drop_websockets`` start; ``refuse_with`` is ``"503"`` (answer 503) or ``"close"`` (close the
connection without an answer).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

KINDS = ("drop_websockets", "restart", "hang", "execution_error", "unavailable")
WHENS = ("now", "in_prompt")
REFUSALS = ("503", "close")
# Kinds that can only happen inside a running prompt.
IN_PROMPT_ONLY = ("hang", "execution_error")
SELECTORS = ("prompt_id", "at_node_class", "at_node_id", "at_step")
COMMON_FIELDS = ("kind", "when", *SELECTORS, "times")
OUTAGE_FIELDS = ("for_s", "for_requests", "refuse_with")
KIND_FIELDS: Mapping[str, tuple[str, ...]] = {
    "drop_websockets": (*OUTAGE_FIELDS, "abrupt"),
    "restart": OUTAGE_FIELDS,
    "hang": (),
    "execution_error": ("exception_type", "exception_message"),
    "unavailable": OUTAGE_FIELDS,
}
DEFAULT_REFUSAL = {"drop_websockets": "close", "restart": "close", "unavailable": "503"}
DEFAULT_EXCEPTION_TYPE = "RuntimeError"
DEFAULT_EXCEPTION_MESSAGE = "fault injected by the ComfyUI emulator"

_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)
WEBSOCKET_PATHS = frozenset({"/ws", "/api/ws"})
CONTROL_PREFIXES = ("/emulator/", "/api/emulator/")


class FaultSpecError(ValueError):
    """A fault body that cannot be armed; ``field`` names the offending field (None: the body itself)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FaultSpec:
    """One fault, validated and with its defaults filled in."""

    kind: str
    when: str
    prompt_id: str | None = None
    at_node_class: str | None = None
    at_node_id: str | None = None
    at_step: int | None = None
    times: int | None = 1
    for_s: float | None = None
    for_requests: int | None = None
    refuse_with: str | None = None
    abrupt: bool | None = None
    exception_type: str | None = None
    exception_message: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The fields that apply to this kind, as ``GET /emulator/faults`` shows them."""
        applicable = (*COMMON_FIELDS, *KIND_FIELDS[self.kind])
        return {key: value for key, value in asdict(self).items() if key in applicable}

    @property
    def starts_outage(self) -> bool:
        """Whether firing this fault makes the server refuse requests for a while."""
        if self.kind == "unavailable":
            return True
        return self.kind in ("restart", "drop_websockets") and (
            self.for_s is not None or self.for_requests is not None
        )


@dataclass(frozen=True)
class Outage:
    """Requests being refused: all of them (``scope="server"``) or websocket upgrades only."""

    fault_id: str
    scope: str
    refuse_with: str
    until: float | None = None
    requests_left: int | None = None


def parse_fault(body: Any, known_classes: Collection[str] | None = None) -> FaultSpec:
    """Validate a ``POST /emulator/faults`` body; raises :class:`FaultSpecError` naming the first bad field.

    ``known_classes``, when given, is the node catalogue ``at_node_class`` must be found in.
    """
    if not isinstance(body, Mapping):
        raise FaultSpecError(None, "the body must be a JSON object describing one fault")
    kind = body.get("kind")
    if kind not in KINDS:
        raise FaultSpecError("kind", f"must be one of {', '.join(KINDS)}")
    allowed = (*COMMON_FIELDS, *KIND_FIELDS[kind])
    for key in body:
        if key not in allowed:
            raise FaultSpecError(key, f"is not a field of a {kind} fault (allowed: {', '.join(allowed)})")

    selected = {key: _optional_text(body, key) for key in ("prompt_id", "at_node_class", "at_node_id")}
    at_step = _optional_int(body, "at_step", minimum=1)
    node_class = selected["at_node_class"]
    if known_classes is not None and node_class is not None and node_class not in known_classes:
        raise FaultSpecError("at_node_class", f"{node_class!r} is not a node class of this server")
    given_selector = next((key for key in SELECTORS if body.get(key) is not None), None)

    default_when = "in_prompt" if kind in IN_PROMPT_ONLY or given_selector else "now"
    when = body.get("when", default_when)
    if when not in WHENS:
        raise FaultSpecError("when", f"must be one of {', '.join(WHENS)}")
    if when == "now" and kind in IN_PROMPT_ONLY:
        raise FaultSpecError("when", f"a {kind} fault happens inside a running prompt; use \"in_prompt\"")
    if when == "now" and given_selector:
        raise FaultSpecError(given_selector, "selects a point in a prompt, which a fault for \"now\" has not")

    times = _optional_int(body, "times", minimum=1) if "times" in body else 1
    if when == "now" and times != 1:
        raise FaultSpecError("times", "a fault for \"now\" fires exactly once")

    spec = FaultSpec(kind=kind, when=when, at_step=at_step, times=times, **selected)
    if "for_s" in KIND_FIELDS[kind]:
        spec = replace(
            spec,
            for_s=_optional_seconds(body, "for_s"),
            for_requests=_optional_int(body, "for_requests", minimum=1),
            refuse_with=_choice(body, "refuse_with", REFUSALS, DEFAULT_REFUSAL[kind]),
        )
        if kind == "unavailable" and spec.for_s is None and spec.for_requests is None:
            raise FaultSpecError("for_s", "an unavailable fault needs for_s or for_requests (or both) to end")
    if kind == "drop_websockets":
        spec = replace(spec, abrupt=_flag(body, "abrupt", default=False))
    if kind == "execution_error":
        exception_type = _text(body, "exception_type", DEFAULT_EXCEPTION_TYPE)
        if not _DOTTED_NAME.fullmatch(exception_type):
            raise FaultSpecError("exception_type", "must be a dotted Python name such as torch.OutOfMemoryError")
        spec = replace(
            spec,
            exception_type=exception_type,
            exception_message=_text(body, "exception_message", DEFAULT_EXCEPTION_MESSAGE, allow_empty=True),
        )
    return spec


def fires_at(spec: FaultSpec, prompt_id: str, node_id: str, class_type: str, step: int | None) -> bool:
    """Whether ``spec`` fires at this point of a prompt: before a node runs (``step=None``) or at a step."""
    return (
        spec.when == "in_prompt"
        and spec.prompt_id in (None, prompt_id)
        and spec.at_node_id in (None, node_id)
        and spec.at_node_class in (None, class_type)
        and spec.at_step == step
    )


def outage_for(spec: FaultSpec, fault_id: str, now: float) -> Outage:
    """The refusals ``spec`` starts when it fires at ``now``."""
    return Outage(
        fault_id=fault_id,
        scope="websocket" if spec.kind == "drop_websockets" else "server",
        refuse_with=spec.refuse_with or DEFAULT_REFUSAL[spec.kind],
        until=None if spec.for_s is None else now + spec.for_s,
        requests_left=spec.for_requests,
    )


@dataclass(frozen=True)
class Admission:
    """The verdict on one request: the outage refusing it (None: serve it), the outages still in force
    afterwards, and those that ended on the way (expired, or their last refused request was this one)."""

    refused_by: Outage | None
    remaining: tuple[Outage, ...]
    ended: tuple[Outage, ...]


def expire(outages: tuple[Outage, ...], now: float) -> tuple[tuple[Outage, ...], tuple[Outage, ...]]:
    """Split ``outages`` into those still in force at ``now`` and those whose time is up."""
    live = tuple(outage for outage in outages if outage.until is None or now < outage.until)
    return live, tuple(outage for outage in outages if outage not in live)


def admit(outages: tuple[Outage, ...], path: str, now: float) -> Admission:
    """Decide one request for ``path`` at ``now``; the first outage in force that covers the path refuses it
    and spends one of its requests. The emulator's own ``/emulator/...`` routes are always served, so a test
    can inspect and heal what it broke.
    """
    live, ended = expire(outages, now)
    if path.startswith(CONTROL_PREFIXES):
        return Admission(None, live, ended)
    for index, outage in enumerate(live):
        if outage.scope == "websocket" and path not in WEBSOCKET_PATHS:
            continue
        if outage.requests_left is None:
            return Admission(outage, live, ended)
        if outage.requests_left <= 1:
            return Admission(outage, live[:index] + live[index + 1 :], (*ended, outage))
        spent = replace(outage, requests_left=outage.requests_left - 1)
        return Admission(outage, live[:index] + (spent,) + live[index + 1 :], ended)
    return Admission(None, live, ended)


def injected_exception(type_name: str, message: str) -> Exception:
    """An exception that ComfyUI's error report names ``type_name`` (``module.Class``, or a bare builtin-style
    name) and whose text is exactly ``message``."""
    module, _, name = type_name.rpartition(".")
    klass = type(name, (Exception,), {"__module__": module or "builtins", "__qualname__": name})
    return klass(message)


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FaultSpecError(key, "must be a non-empty string or null")
    return value


def _text(body: Mapping[str, Any], key: str, default: str, allow_empty: bool = False) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise FaultSpecError(key, "must be a string" if allow_empty else "must be a non-empty string")
    return value


def _optional_int(body: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultSpecError(key, f"must be an integer >= {minimum} or null")
    return value


def _optional_seconds(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise FaultSpecError(key, "must be a number of seconds > 0 or null")
    return float(value)


def _choice(body: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(key, default)
    if value not in choices:
        raise FaultSpecError(key, f"must be one of {', '.join(repr(choice) for choice in choices)}")
    return value


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise FaultSpecError(key, "must be true or false")
    return value
