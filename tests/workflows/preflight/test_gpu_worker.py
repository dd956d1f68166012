"""The GPU worker refuses to start when a workflow template cannot run on the live ComfyUI."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from gpuorch.services import Services
from gpuorch.settings import Settings, settings_env
from tests.conftest import free_port
from tests.workflows.preflight.conftest import NO_CAMERA_LORA, REPO, held
from workers.checks import template_problems


def test_templates_pass_on_a_server_with_the_configured_models(comfyui):
    server = comfyui(held())

    assert template_problems(Services(Settings(comfyui_url=server.url))) == []


def test_a_model_file_the_server_lacks_is_a_problem(comfyui):
    server = comfyui(held("camera_lora"))

    assert template_problems(Services(Settings(comfyui_url=server.url))) == [NO_CAMERA_LORA]


def test_a_server_that_stopped_answering_is_a_problem():
    url = f"http://127.0.0.1:{free_port()}"

    [problem] = template_problems(Services(Settings(comfyui_url=url)))

    assert problem.startswith(f"cannot reach ComfyUI at {url}")


def test_a_broken_workflow_folder_is_a_problem(comfyui, tmp_path):
    server = comfyui(held())
    (tmp_path / "workflows" / "broken").mkdir(parents=True)

    [problem] = template_problems(Services(Settings(comfyui_url=server.url, workflows_dir=str(tmp_path / "workflows"))))

    assert "broken" in problem and "graph.json: file not found" in problem


def test_the_worker_process_exits_2_naming_the_missing_model(provisioned, settings, comfyui):
    server = comfyui(held("camera_lora"))
    worker_settings = dataclasses.replace(settings, comfyui_url=server.url, comfyui_ready_timeout=10.0)
    env = {**os.environ, **settings_env(worker_settings)}

    done = subprocess.run(
        [sys.executable, "-m", "workers.gpu"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 2, done.stderr
    assert f"refusing to start: {NO_CAMERA_LORA}" in done.stderr
    assert "consuming" not in done.stderr
