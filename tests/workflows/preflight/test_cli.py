"""`gpuorch workflows check` against a ComfyUI emulator on loopback, a saved catalogue, and no server at all."""

from __future__ import annotations

from click.testing import CliRunner, Result

from gpuorch.cli.main import main
from tests.conftest import free_port
from tests.workflows.preflight.conftest import NO_CAMERA_LORA, OBJECT_INFO, held


def check(*args: str, comfyui_url: str | None = None) -> Result:
    env = {"GPUORCH_COMFYUI_URL": comfyui_url} if comfyui_url else {}
    return CliRunner().invoke(main, ["workflows", "check", *args], env=env)


def test_a_server_with_the_configured_models_passes(comfyui):
    server = comfyui(held())

    result = check(comfyui_url=server.url)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(f"against ComfyUI at {server.url}.")
    assert lines[1:] == ["ok camera-angle", "ok qwen-image-edit", "All 2 workflow(s) pass."]
    assert "note:" not in result.stdout


def test_a_missing_model_file_fails_naming_workflow_node_and_input(comfyui):
    server = comfyui(held("camera_lora"))

    result = check("--comfyui-url", server.url)

    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[1:] == [
        f"FAIL {NO_CAMERA_LORA}",
        "ok qwen-image-edit",
        "1 of 2 workflow(s) failed: camera-angle",
    ]


def test_the_option_overrides_the_configured_url(comfyui):
    good, bad = comfyui(held()), comfyui(held("vae"))

    assert check("--comfyui-url", good.url, comfyui_url=bad.url).exit_code == 0
    assert check("--comfyui-url", bad.url, comfyui_url=good.url).exit_code == 1


def test_the_saved_catalogue_passes_and_says_model_files_are_assumed():
    result = check("--catalogue", str(OBJECT_INFO))

    assert result.exit_code == 0, result.output
    assert f"against the saved catalogue {OBJECT_INFO}." in result.stdout
    [note] = [line for line in result.stdout.splitlines() if line.startswith("note: ")]
    assert "model files were not checked" in note and "assumed present" in note
    assert result.stdout.splitlines()[-3:] == ["ok camera-angle", "ok qwen-image-edit", "All 2 workflow(s) pass."]


def test_an_unreachable_server_is_exit_2_on_stderr():
    url = f"http://127.0.0.1:{free_port()}"

    result = check(comfyui_url=url)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot reach ComfyUI at {url}: ")


def test_an_unreadable_catalogue_is_exit_2(tmp_path):
    result = check("--catalogue", str(tmp_path / "missing.json"))

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot read the node catalogue {tmp_path / 'missing.json'}: ")


def test_url_and_catalogue_together_are_a_usage_error():
    result = check("--comfyui-url", "http://127.0.0.1:1", "--catalogue", str(OBJECT_INFO))

    assert result.exit_code == 2
    assert "not both" in result.stderr
