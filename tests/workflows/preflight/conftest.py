"""Fixtures for the template checks: the shipped workflows and catalogue, and emulators holding some model files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gpuorch_dev.emulator import EmulatorConfig, RunningEmulator, start_in_thread
from gpuorch.workflows import ModelFiles, WorkflowSet, load_workflows
from tests.paths import REPO
from tests.support.model_files import builtin_file, builtin_folders

OBJECT_INFO = REPO / "configs" / "comfyui" / "object_info.json"
MODELS = ModelFiles()
NO_CAMERA_LORA = (
    f"camera-angle: the server has no loras file {builtin_file('camera_lora')!r} "
    "(camera_lora, loaded by node 5 LoraLoaderModelOnly.lora_name)"
)


def held(*without: str) -> dict[str, list[str]]:
    """The configured model files by folder, less those of the roles in ``without``."""
    return builtin_folders(*without)


@pytest.fixture(scope="session")
def workflows() -> WorkflowSet:
    return load_workflows()


@pytest.fixture(scope="session")
def object_info() -> dict[str, Any]:
    """The shipped node catalogue: a real ComfyUI's, with empty model lists."""
    return json.loads(OBJECT_INFO.read_text(encoding="utf-8"))


@pytest.fixture
def comfyui(tmp_path) -> Iterator[Callable[[dict[str, list[str]]], RunningEmulator]]:
    """Start emulators on loopback holding the given model files; each is stopped after the test."""
    started: list[RunningEmulator] = []

    def start(files: dict[str, list[str]]) -> RunningEmulator:
        config = EmulatorConfig(data_dir=tmp_path / f"comfyui{len(started)}", port=0, model_files=files)
        started.append(start_in_thread(config))
        return started[-1]

    yield start
    for running in started:
        running.stop()
