"""The GPU worker's check of the declared model files: each present and of its declared size, or named."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from gpuorch.modelsync.check import file_problems
from gpuorch.services import Services
from gpuorch.settings import Settings, settings_env
from gpuorch.workflows import load_workflows
from gpuorch.workflows.models import ModelFile, model_files
from tests.paths import REPO
from workers.checks import model_problems

VAE = ModelFile("vae", "v.safetensors", 10, "a" * 64, "s3://models/v", "v.safetensors", ("camera-angle",))
LORA = ModelFile("loras", "l.safetensors", 4, "b" * 64, "s3://models/l", "l.safetensors",
                 ("camera-angle", "qwen-image-edit"))


def test_files_of_their_declared_sizes_pass(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "v.safetensors").write_bytes(b"0123456789")
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "l.safetensors").write_bytes(b"abcd")

    assert file_problems([VAE, LORA], tmp_path) == []


def test_each_missing_or_wrong_file_is_named_with_the_workflows_that_load_it(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "v.safetensors").write_bytes(b"01234")

    assert file_problems([VAE, LORA], tmp_path) == [
        f"model file {tmp_path}/vae/v.safetensors has 5 bytes, not the declared 10 (an interrupted copy, or another "
        "file under this name; loaded by camera-angle): `gpuorch models sync` replaces it",
        f"model file {tmp_path}/loras/l.safetensors is missing (loaded by camera-angle, qwen-image-edit): "
        "`gpuorch models sync` fetches it",
    ]


def test_the_worker_checks_nothing_without_a_models_folder():
    assert model_problems(Services(Settings())) == []


def test_the_worker_names_every_file_the_builtin_workflows_lack(tmp_path):
    settings = dataclasses.replace(Settings(), models_dir=str(tmp_path))

    problems = model_problems(Services(settings))

    declared = model_files(load_workflows(), settings.models)
    assert len(problems) == len(declared) == 6
    assert all(f"model file {tmp_path}/{file.path} is missing" in problem
               for file, problem in zip(declared, problems))


def test_the_worker_process_refuses_naming_each_missing_file_before_it_waits_for_comfyui(provisioned, settings,
                                                                                        tmp_path):
    """No ComfyUI answers here: the worker must refuse on the files alone, without waiting for one."""
    worker_settings = dataclasses.replace(settings, models_dir=str(tmp_path), comfyui_url="http://127.0.0.1:9",
                                          comfyui_ready_timeout=600.0)

    done = subprocess.run([sys.executable, "-m", "workers.gpu"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **settings_env(worker_settings)})

    assert done.returncode == 2, done.stderr
    refusals = [line for line in done.stderr.splitlines() if "refusing to start: model file" in line]
    assert len(refusals) == 6 and "consuming" not in done.stderr
