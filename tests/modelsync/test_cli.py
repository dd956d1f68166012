"""`gpuorch models list|sync|check`, the commands the GPU instance's boot and its operator run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpuorch.cli.main import main
from gpuorch.settings import Settings, settings_env


@pytest.fixture
def model_settings(moto_endpoint, tmp_path, workflows_dir) -> Settings:
    return dataclasses.replace(Settings(), aws_endpoint_url=moto_endpoint, workflows_dir=str(workflows_dir),
                               models_dir=str(tmp_path / "models"))


def gpuorch(settings: Settings, *args: str):
    return CliRunner().invoke(main, ["models", *args], env=settings_env(settings))


def lines_saying(output: str, done: str) -> int:
    return sum(line.startswith(f"{done} ") for line in output.splitlines())


def test_list_gives_each_file_and_the_bytes_each_workflow_loads():
    answer = CliRunner().invoke(main, ["models", "list", "--json"], env=settings_env(Settings()))

    assert answer.exit_code == 0, answer.output
    # The document alone: a warning logged meanwhile (by another test's thread still winding down) goes to stderr.
    document = json.loads(answer.stdout)
    assert document["store"] == "volume" and document["bytes"] == 33_703_194_590 and len(document["files"]) == 6
    assert document["workflows"]["qwen-image-edit"]["bytes"] == 31_768_126_454
    [vae] = [f for f in document["files"] if f["path"] == "vae/qwen_image_vae.safetensors"]
    assert vae["bytes"] == 253_806_246 and vae["workflows"] == ["camera-angle", "qwen-image-edit"]


def test_sync_then_check_pass_and_a_second_sync_keeps_everything(model_settings, stored_models):
    first = gpuorch(model_settings, "sync")
    assert first.exit_code == 0, first.output
    assert lines_saying(first.output, "fetched") == 5 and "5 of 5 file(s) in place" in first.output

    assert gpuorch(model_settings, "check").stdout == f"All 5 model file(s) are in {model_settings.models_dir}.\n"
    again = gpuorch(model_settings, "sync")
    assert again.exit_code == 0 and lines_saying(again.output, "kept") == 5 and "; 0 bytes fetched" in again.output


def test_check_names_each_missing_file_and_exits_1(model_settings):
    answer = gpuorch(model_settings, "check")

    assert answer.exit_code == 1
    assert answer.output.count("FAIL model file ") == 5 and "loras/Qwen-Edit-2509-Multiple-angles" in answer.output


def test_sync_exits_1_naming_the_file_it_could_not_bring(model_settings, stored_models, s3):
    bucket, key = stored_models["vae"].source.removeprefix("s3://").split("/", 1)
    s3.delete_object(Bucket=bucket, Key=key)

    answer = gpuorch(model_settings, "sync")

    assert answer.exit_code == 1
    assert f"failed   vae/qwen_image_vae.safetensors: {stored_models['vae'].source}" in answer.output
    assert "4 of 5 file(s) in place" in answer.output


def test_sync_and_check_need_a_models_folder():
    for command in ("sync", "check"):
        answer = CliRunner().invoke(main, ["models", command], env=settings_env(Settings()))
        assert answer.exit_code == 2 and "GPUORCH_MODELS_DIR is empty" in answer.output


def test_the_boot_runs_the_sync_as_a_process_of_its_own(model_settings, stored_models):
    """As gpuorch-models-sync.service does: the installed `gpuorch` command, the settings in its environment."""
    command = Path(sys.executable).parent / "gpuorch"

    done = subprocess.run([str(command), "models", "sync"], env={**os.environ, **settings_env(model_settings)},
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    for stored in stored_models.values():
        assert (Path(model_settings.models_dir) / stored.path).read_bytes() == stored.data
