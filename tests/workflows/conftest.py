"""Fixtures for the workflow tests: the shipped catalogue, the recorded node catalogue, editable copies."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gpuorch.workflows import ModelFiles, Workflow, load_workflows, load_workflow
from gpuorch.workflows.folders import WorkflowSet, BUILTIN_WORKFLOWS
from tests.paths import REPO

OBJECT_INFO = REPO / "configs" / "comfyui" / "object_info.json"

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="session")
def workflows() -> WorkflowSet:
    return load_workflows()


@pytest.fixture(scope="session")
def camera(workflows) -> Workflow:
    return workflows.get("camera-angle")


@pytest.fixture(scope="session")
def edit(workflows) -> Workflow:
    return workflows.get("qwen-image-edit")


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    return json.loads(OBJECT_INFO.read_text(encoding="utf-8"))


@pytest.fixture
def models() -> ModelFiles:
    return ModelFiles()


@pytest.fixture
def copy_workflow(tmp_path) -> Callable[..., Path]:
    """Copy a shipped workflow folder into tmp_path, optionally editing its graph and params JSON."""

    def make(name: str, *, graph: Edit | None = None, params: Edit | None = None, as_name: str | None = None) -> Path:
        folder = tmp_path / (as_name or name)
        shutil.copytree(BUILTIN_WORKFLOWS / name, folder)
        for file_name, edit_json in (("graph.json", graph), ("params.json", params)):
            if edit_json is not None:
                path = folder / file_name
                data = json.loads(path.read_text(encoding="utf-8"))
                edit_json(data)
                path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        return folder

    return make


@pytest.fixture
def load_copy(copy_workflow) -> Callable[..., Workflow]:
    def make(name: str, **edits: Any) -> Workflow:
        return load_workflow(copy_workflow(name, **edits))

    return make
