"""Errors of the workflow package, in gpuorch.errors' tree.

    ConfigurationError > WorkflowDefinitionError   a workflow folder is malformed (names file and problem)
    RequestRefused     > BindError                 parameters or image names that do not fit the workflow
    RequestRefused     > UnknownWorkflow           no workflow of that name (gpuorch.errors; also a KeyError)

Request validation errors are marshmallow's ``ValidationError``, with ``{field: [reasons]}`` messages.
"""

from __future__ import annotations

from pathlib import Path

from gpuorch.errors import ConfigurationError, RequestRefused, UnknownWorkflow

__all__ = ["BindError", "UnknownWorkflow", "WorkflowDefinitionError"]


class WorkflowDefinitionError(ConfigurationError):
    """A workflow folder cannot be used; the message names the file and what is wrong with it."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BindError(RequestRefused, ValueError):
    """The parameters or image names handed to bind() do not fit the workflow."""
