"""The shapes ComfyUI answers with, parsed: history entries, queue state, outputs, failures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gpuorch.comfyui.errors import (
    ComfyError,
    ComfyExecutionError,
    ComfyInterrupted,
    ComfyProtocolError,
)

Location = Literal["done", "running", "pending"]


@dataclass(frozen=True)
class OutputRef:
    """One file a prompt produced; ``media`` is the output key it was listed under (images, gifs...)."""

    node_id: str
    filename: str
    subfolder: str
    type: str
    media: str


@dataclass(frozen=True)
class Failure:
    """Why a finished prompt did not succeed, from the last message of its history status."""

    kind: Literal["error", "interrupted"]
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    traceback: tuple[str, ...] = ()

    def to_exception(self, prompt_id: str) -> ComfyError:
        if self.kind == "interrupted":
            return ComfyInterrupted(prompt_id, node_id=self.node_id, node_type=self.node_type)
        return ComfyExecutionError(
            prompt_id,
            node_id=self.node_id,
            node_type=self.node_type,
            exception_type=self.exception_type,
            exception_message=self.exception_message,
            traceback=self.traceback,
        )


@dataclass(frozen=True)
class HistoryEntry:
    """A finished prompt as ``/history/{id}`` reports it."""

    prompt_id: str
    status_str: str | None
    completed: bool
    outputs: tuple[OutputRef, ...]
    failure: Failure | None
    execution_s: float | None = None  # from execution_start to the last status message (GPU time)

    @property
    def succeeded(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    prompt_id: str
    outputs: tuple[OutputRef, ...]
    execution_s: float | None = None


def failure_from_message(event: str, data: Mapping[str, Any]) -> Failure:
    trace = data.get("traceback")
    return Failure(
        kind="interrupted" if event == "execution_interrupted" else "error",
        node_id=None if data.get("node_id") is None else str(data["node_id"]),
        node_type=data.get("node_type"),
        exception_type=data.get("exception_type"),
        exception_message=data.get("exception_message"),
        traceback=tuple(trace) if isinstance(trace, list) else (),
    )


def _output_refs(outputs: Mapping[str, Any]) -> tuple[OutputRef, ...]:
    refs = []
    for node_id, by_media in outputs.items():
        if not isinstance(by_media, Mapping):
            continue
        for media, items in by_media.items():
            # Output keys also carry non-file values (``animated: [true]``, ``text: [...]``).
            for item in items if isinstance(items, list) else ():
                if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                    refs.append(OutputRef(str(node_id), item["filename"], str(item.get("subfolder") or ""),
                                          str(item.get("type") or "output"), str(media)))
    return tuple(refs)


def parse_history(prompt_id: str, body: Any) -> HistoryEntry | None:
    """Parse a ``/history/{id}`` answer; None when the prompt has no entry (queued, running or unknown)."""
    if not isinstance(body, Mapping):
        raise ComfyProtocolError(f"/history/{prompt_id} answered {type(body).__name__}, not an object")
    entry = body.get(prompt_id)
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ComfyProtocolError(f"/history/{prompt_id} entry is not an object")
    status = entry.get("status") if isinstance(entry.get("status"), Mapping) else {}
    status_str = status.get("status_str")
    # Servers older than the ``status`` field only wrote history for finished runs.
    completed = bool(status.get("completed", not status))
    failure = None
    if status_str == "error" or (status and not completed):
        messages = [m for m in status.get("messages") or () if isinstance(m, list) and len(m) == 2]
        last = next((m for m in reversed(messages)
                     if m[0] in ("execution_error", "execution_interrupted")), None)
        failure = (failure_from_message(last[0], last[1] if isinstance(last[1], Mapping) else {})
                   if last else Failure(kind="error", exception_message=f"status {status_str!r}"))
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), Mapping) else {}
    return HistoryEntry(prompt_id, status_str, completed, _output_refs(outputs), failure,
                        execution_seconds(status.get("messages") or ()))


def execution_seconds(messages: Any) -> float | None:
    """Seconds from `execution_start` to the last status message, from their millisecond timestamps."""
    stamps = [(m[0], m[1].get("timestamp")) for m in messages
              if isinstance(m, list) and len(m) == 2 and isinstance(m[1], Mapping)]
    start = next((t for event, t in stamps if event == "execution_start" and isinstance(t, (int, float))), None)
    end = next((t for _, t in reversed(stamps) if isinstance(t, (int, float))), None)
    if start is None or end is None or end < start:
        return None
    return (end - start) / 1000.0


def parse_queue(body: Any) -> QueueState:
    """Parse ``GET /queue``: each item is ``[number, prompt_id, graph, extra_data, outputs]``."""
    if not isinstance(body, Mapping):
        raise ComfyProtocolError("/queue answered something other than an object")

    def ids(key: str) -> tuple[str, ...]:
        return tuple(str(item[1]) for item in body.get(key) or ()
                     if isinstance(item, list) and len(item) > 1)

    return QueueState(running=ids("queue_running"), pending=ids("queue_pending"))
