"""Errors of the workflow package.

    WorkflowError
    ├── WorkflowDefinitionError   a workflow folder is malformed (names file and problem)
    ├── UnknownWorkflowError      no workflow of that name (also a KeyError)
    └── BindError                 parameters or image names that do not fit the workflow (also a ValueError)

Request validation errors are marshmallow's ``ValidationError``, with ``{field: [reasons]}`` messages.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BindError", "UnknownWorkflowError", "WorkflowDefinitionError", "WorkflowError"]


class WorkflowError(Exception):
    """Base class of every error raised by gpuorch.workflows."""


class WorkflowDefinitionError(WorkflowError):
    """A workflow folder cannot be used; the message names the file and what is wrong with it."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnknownWorkflowError(WorkflowError, KeyError):
    """No workflow of that name is in the catalogue."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = known
        super().__init__(name)

    def __str__(self) -> str:
        # KeyError would print the repr of its argument; say what is known instead.
        return f"no workflow named {self.name!r} (known: {', '.join(self.known) or 'none'})"


class BindError(WorkflowError, ValueError):
    """The parameters or image names handed to bind() do not fit the workflow."""
