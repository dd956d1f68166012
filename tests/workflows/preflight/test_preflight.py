"""check_templates over whole catalogues, and reading the node catalogue from a live server or a saved file."""

from __future__ import annotations

import pytest

from gpuorch_dev.emulator.catalogue import build_catalogue
from gpuorch.workflows.preflight import (
    CatalogueUnavailable,
    NodeCatalogue,
    check_templates,
    live_catalogue,
    saved_catalogue,
)
from tests.conftest import free_port
from tests.workflows.preflight.conftest import MODELS, NO_CAMERA_LORA, OBJECT_INFO, held
from tests.support.model_files import builtin_file


@pytest.mark.parametrize(
    ("files", "models_known", "failing"),
    [
        pytest.param(held(), True, [], id="a server with every file"),
        pytest.param(held("camera_lora"), True, ["camera-angle"], id="no camera LoRA"),
        pytest.param(held("lightning_4step_lora"), True, ["qwen-image-edit"], id="no 4-step LoRA"),
        pytest.param(held("vae"), True, ["camera-angle", "qwen-image-edit"], id="no VAE: both"),
        pytest.param({}, True, ["camera-angle", "qwen-image-edit"], id="a server with no files"),
        pytest.param({}, False, [], id="a saved catalogue: files assumed"),
    ],
)
def test_which_workflows_fail(workflows, object_info, files, models_known, failing):
    catalogue = NodeCatalogue(build_catalogue(object_info, files), "test", models_known=models_known)

    result = check_templates(workflows, catalogue, MODELS)

    assert list(result.problems) == ["camera-angle", "qwen-image-edit"]
    assert result.failed == failing
    assert result.ok is not failing
    assert len(result.all_problems()) == sum(len(found) for found in result.problems.values())
    assert all(problem.startswith(tuple(failing)) for problem in result.all_problems())


def test_a_missing_file_is_named_with_its_node_and_input(workflows, object_info):
    catalogue = NodeCatalogue(build_catalogue(object_info, held("camera_lora")), "test", models_known=True)

    assert check_templates(workflows, catalogue, MODELS).all_problems() == [NO_CAMERA_LORA]


def test_only_a_saved_catalogue_states_an_assumption(workflows, object_info):
    live = check_templates(workflows, NodeCatalogue(object_info, "live", models_known=True), MODELS)
    saved = check_templates(workflows, NodeCatalogue(object_info, "the file", models_known=False), MODELS)

    assert live.assumption is None
    assert "model files were not checked" in saved.assumption and "the file" in saved.assumption


def test_the_shipped_catalogue_reads_as_a_saved_one():
    catalogue = saved_catalogue(OBJECT_INFO)

    assert (catalogue.models_known, catalogue.source) == (False, f"the saved catalogue {OBJECT_INFO}")
    assert "KSampler" in catalogue.object_info


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(None, "No such file", id="missing"),
        pytest.param("{not json", "cannot read", id="not JSON"),
        pytest.param("[1, 2]", "not a node catalogue", id="not an object"),
    ],
)
def test_an_unusable_catalogue_file_is_refused(tmp_path, content, reason):
    path = tmp_path / "object_info.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    with pytest.raises(CatalogueUnavailable, match=reason):
        saved_catalogue(path)


def test_a_live_catalogue_lists_the_servers_files(comfyui, object_info):
    server = comfyui(held("vae"))

    catalogue = live_catalogue(server.url, timeout=5)

    assert (catalogue.models_known, catalogue.source) == (True, f"ComfyUI at {server.url}")
    assert builtin_file("vae") not in catalogue.object_info["VAELoader"]["input"]["required"]["vae_name"][0]
    loras = catalogue.object_info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"][0]
    assert builtin_file("camera_lora") in loras
    assert catalogue.object_info.keys() == object_info.keys()


def test_a_server_that_does_not_answer_is_unavailable():
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(CatalogueUnavailable, match=f"cannot reach ComfyUI at {url}"):
        live_catalogue(url, timeout=5)
