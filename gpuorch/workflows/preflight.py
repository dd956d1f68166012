"""Checking every workflow template against a ComfyUI node catalogue, live or saved, before any job runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuorch.comfyui.client import ComfyClient
from gpuorch.comfyui.errors import ComfyError, ComfyUnavailable
from gpuorch.errors import Unavailable
from gpuorch.workflows.check import check_workflow
from gpuorch.model_files import ModelFiles
from gpuorch.workflows.workflow import Workflow

__all__ = [
    "CatalogueUnavailable",
    "NodeCatalogue",
    "TemplateCheck",
    "check_templates",
    "live_catalogue",
    "saved_catalogue",
]


class CatalogueUnavailable(Unavailable):
    """No node catalogue to check against: the server did not answer as ComfyUI, or the file is not one."""


@dataclass(frozen=True)
class NodeCatalogue:
    """A ComfyUI node catalogue (``GET /object_info``) and where it came from.

    ``models_known`` says whether its loader lists are the files a server holds (a live answer) or say
    nothing about them (a saved file, such as the shipped one, whose lists are empty).
    """

    object_info: Mapping[str, Any]
    source: str
    models_known: bool


def live_catalogue(url: str, *, timeout: float) -> NodeCatalogue:
    """The catalogue a running ComfyUI serves now; CatalogueUnavailable when it cannot be read."""
    with ComfyClient(url, client_id="gpuorch-template-check", timeout=timeout) as client:
        try:
            object_info = client.object_info()
        except ComfyUnavailable as exc:
            raise CatalogueUnavailable(f"cannot reach ComfyUI at {url}: {exc}") from None
        except ComfyError as exc:
            raise CatalogueUnavailable(f"{url} does not serve a ComfyUI node catalogue: {exc}") from None
    if not isinstance(object_info, dict):
        raise CatalogueUnavailable(f"{url} does not serve a ComfyUI node catalogue: /object_info is not an object")
    return NodeCatalogue(object_info, f"ComfyUI at {url}", models_known=True)


def saved_catalogue(path: Path) -> NodeCatalogue:
    """A catalogue saved to a file; CatalogueUnavailable when it is missing or not a JSON object."""
    try:
        object_info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogueUnavailable(f"cannot read the node catalogue {path}: {exc}") from None
    if not isinstance(object_info, dict):
        raise CatalogueUnavailable(f"{path} is not a node catalogue: expected a JSON object of node classes")
    return NodeCatalogue(object_info, f"the saved catalogue {path}", models_known=False)


@dataclass(frozen=True)
class TemplateCheck:
    """The outcome of checking every workflow: each one's problems by name, in catalogue order."""

    source: str
    models_known: bool
    problems: Mapping[str, tuple[str, ...]]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[str]:
        """The workflows that have problems."""
        return [name for name, found in self.problems.items() if found]

    def all_problems(self) -> list[str]:
        """Every problem, each naming its workflow (and node and input where one is to blame)."""
        return [problem for found in self.problems.values() for problem in found]

    @property
    def assumption(self) -> str | None:
        """What the check could not see, to be said beside its result; None when it saw everything."""
        if self.models_known:
            return None
        return (
            f"model files were not checked: {self.source} does not say which files a server holds, "
            "so the configured ones are assumed present; check against a live ComfyUI to verify them"
        )


def check_templates(workflows: Iterable[Workflow], catalogue: NodeCatalogue, models: ModelFiles) -> TemplateCheck:
    """Check every workflow as a ComfyUI serving this catalogue would.

    Used by `gpuorch workflows check` and by the GPU worker before it consumes jobs. Against a live
    server's catalogue the configured model files it lacks are problems; a saved one cannot tell.
    """
    problems = {
        workflow.name: tuple(
            check_workflow(workflow, catalogue.object_info, models, models_known=catalogue.models_known)
        )
        for workflow in workflows
    }
    return TemplateCheck(catalogue.source, catalogue.models_known, problems)
