"""Errors raised by the ComfyUI client, grouped by what the caller should do about them.

Callers catch by meaning, never by parsing messages; two also sit on a branch of gpuorch.errors' tree::

    ComfyError                                  anything that went wrong talking to ComfyUI or running on it
     ├── ComfyUnavailable   (Unavailable)       refused/reset connection, HTTP timeout, 5xx answer
     │    └── ComfyPromptLost                   the prompt is neither queued, running nor in history (restarted)
     ├── ComfyRejected      (RequestRefused)    ComfyUI refused the request as sent (400 graph validation, 4xx)
     ├── ComfyProtocolError                     an answer whose shape is not ComfyUI's (wrong URL, other server)
     ├── ComfyExecutionError                    a node raised while the prompt ran (history ``execution_error``)
     ├── ComfyInterrupted                       the prompt was interrupted (history ``execution_interrupted``)
     └── ComfyTimeout                           the caller's deadline for the prompt passed; it may still run

Only ``ComfyUnavailable`` (and so ``ComfyPromptLost``) is worth retrying as is: it is an ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpuorch.errors import GpuorchError, RequestRefused, Unavailable

__all__ = [
    "ComfyError",
    "ComfyExecutionError",
    "ComfyInterrupted",
    "ComfyPromptLost",
    "ComfyProtocolError",
    "ComfyRejected",
    "ComfyTimeout",
    "ComfyUnavailable",
    "NodeProblem",
]


class ComfyError(GpuorchError):
    """Base class of every error the ComfyUI client raises."""


class ComfyUnavailable(ComfyError, Unavailable):
    """ComfyUI could not be reached or answered with a server error; trying again later may work."""


class ComfyPromptLost(ComfyUnavailable):
    """ComfyUI no longer knows the prompt (its queue and history live in memory and die with it)."""

    def __init__(self, prompt_id: str) -> None:
        super().__init__(
            f"prompt {prompt_id} is neither queued, running nor in history: ComfyUI lost it (restart?)"
        )
        self.prompt_id = prompt_id


class ComfyProtocolError(ComfyError):
    """ComfyUI answered with a body this client cannot understand."""


@dataclass(frozen=True)
class NodeProblem:
    """One validation problem of one node, as listed in a 400 answer's ``node_errors``."""

    node_id: str
    class_type: str | None
    input_name: str | None
    type: str
    message: str
    details: str

    def __str__(self) -> str:
        where = f"node {self.node_id}"
        if self.class_type:
            where += f" ({self.class_type})"
        if self.input_name:
            where += f" input {self.input_name!r}"
        text = f"{where}: {self.type}"
        if self.message:
            text += f": {self.message}"
        # ``details`` often just repeats the input name; only keep it when it adds something.
        if self.details and self.details != self.input_name:
            text += f" ({self.details})"
        return text


def _node_problems(node_errors: Mapping[str, Any]) -> tuple[NodeProblem, ...]:
    problems = []
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            continue
        class_type = entry.get("class_type")
        for error in entry.get("errors") or ():
            if not isinstance(error, Mapping):
                continue
            extra = error.get("extra_info") if isinstance(error.get("extra_info"), Mapping) else {}
            problems.append(
                NodeProblem(
                    node_id=str(node_id),
                    class_type=class_type if isinstance(class_type, str) else None,
                    input_name=extra.get("input_name"),
                    type=str(error.get("type") or "error"),
                    message=str(error.get("message") or ""),
                    details=str(error.get("details") or ""),
                )
            )
    return tuple(problems)


class ComfyRejected(ComfyError, RequestRefused):
    """ComfyUI refused the request as sent; sending it again unchanged will fail again.

    For ``POST /prompt`` this is the 400 validation answer: ``error`` is its ``error`` object and
    ``node_errors`` its per-node map; ``problems`` flattens the latter into one entry per problem.
    """

    def __init__(
        self,
        summary: str,
        *,
        error: Mapping[str, Any] | None = None,
        node_errors: Mapping[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        self.summary = summary
        self.error: Mapping[str, Any] = error or {}
        self.node_errors: Mapping[str, Any] = node_errors or {}
        self.status_code = status_code
        self.problems = _node_problems(self.node_errors)
        super().__init__(self._describe())

    @classmethod
    def from_answer(cls, body: Any, *, status_code: int) -> ComfyRejected:
        """Build from the JSON body of a rejected ``POST /prompt`` (any shape is tolerated)."""
        body = body if isinstance(body, Mapping) else {}
        error = body.get("error") if isinstance(body.get("error"), Mapping) else {}
        node_errors = body.get("node_errors") if isinstance(body.get("node_errors"), Mapping) else {}
        summary = "ComfyUI rejected the prompt"
        if not error and not node_errors:
            summary += f" with HTTP {status_code}"
        return cls(summary, error=error, node_errors=node_errors, status_code=status_code)

    def _describe(self) -> str:
        head = self.summary
        kind, message, details = (self.error.get(k) for k in ("type", "message", "details"))
        if kind:
            head += f": {kind}"
        if message:
            head += f": {message}"
        if details and details != message:
            head += f" ({details})"
        return "\n  ".join([head, *map(str, self.problems)])


class ComfyExecutionError(ComfyError):
    """A node raised an exception while the prompt ran."""

    def __init__(
        self,
        prompt_id: str,
        *,
        node_id: str | None,
        node_type: str | None,
        exception_type: str | None,
        exception_message: str | None,
        traceback: tuple[str, ...] = (),
    ) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = (exception_message or "").strip()
        self.traceback = traceback
        where = f"node {node_id} ({node_type})" if node_id else "an unknown node"
        super().__init__(
            f"prompt {prompt_id} failed in {where}: "
            f"{exception_type or 'error'}: {self.exception_message or 'no message'}"
        )


class ComfyInterrupted(ComfyError):
    """The prompt was interrupted before it finished (by ``/interrupt`` or an operator)."""

    def __init__(self, prompt_id: str, *, node_id: str | None = None, node_type: str | None = None) -> None:
        self.prompt_id = prompt_id
        self.node_id = node_id
        self.node_type = node_type
        where = f" at node {node_id} ({node_type})" if node_id else ""
        super().__init__(f"prompt {prompt_id} was interrupted{where}")


class ComfyTimeout(ComfyError):
    """The prompt did not finish before the caller's deadline; it may still be queued or running."""

    def __init__(self, prompt_id: str, timeout: float) -> None:
        self.prompt_id = prompt_id
        self.timeout = timeout
        super().__init__(f"prompt {prompt_id} did not finish within {timeout:g}s")
