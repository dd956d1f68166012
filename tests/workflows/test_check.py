"""check_workflow: both shipped templates validate against the recorded ComfyUI catalogue; faults are named."""

from __future__ import annotations

import copy

import pytest

from gpuorch.workflows import ModelFiles, check_workflow, load_workflow
from gpuorch.workflows.check import sample_requests
from tests.support.model_files import builtin_file, builtin_folders

LOADERS = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
}


def catalogue_with_files(object_info, files_by_folder):
    """The recorded catalogue as a server holding ``files_by_folder`` would answer it."""
    info = copy.deepcopy(object_info)
    for (class_type, input_name), folder in LOADERS.items():
        info[class_type]["input"]["required"][input_name][0] = list(files_by_folder.get(folder, []))
    return info


@pytest.mark.parametrize("name", ["camera-angle", "qwen-image-edit"])
def test_shipped_templates_pass(workflows, object_info, models, name):
    assert check_workflow(workflows.get(name), object_info, models, models_known=False) == []


@pytest.mark.parametrize("name", ["camera-angle", "qwen-image-edit"])
def test_pass_on_a_server_that_has_the_models(workflows, object_info, models, name):
    info = catalogue_with_files(object_info, builtin_folders())
    assert check_workflow(workflows.get(name), info, models, models_known=True) == []


def test_missing_model_files_are_reported(camera, object_info, models):
    info = catalogue_with_files(object_info, builtin_folders("camera_lora"))
    assert check_workflow(camera, info, models, models_known=True) == [
        f"camera-angle: the server has no loras file {builtin_file('camera_lora')!r} "
        "(camera_lora, loaded by node 5 LoraLoaderModelOnly.lora_name)"
    ]


def test_the_shipped_catalogue_lists_no_models(edit, object_info, models):
    problems = check_workflow(edit, object_info, models, models_known=True)
    assert len(problems) == 4
    assert all("the server has no" in p for p in problems)


def test_a_renamed_setting_is_checked(edit, object_info):
    renamed = ModelFiles(vae="other_vae.safetensors")
    info = catalogue_with_files(object_info, builtin_folders())
    problems = check_workflow(edit, info, renamed, models_known=True)
    assert problems == [
        "qwen-image-edit: the server has no vae file 'other_vae.safetensors' (vae, loaded by node 3 VAELoader.vae_name)"
    ]
    assert check_workflow(edit, object_info, renamed, models_known=False) == []


def test_v3_combo_catalogues_are_filled_too(edit, object_info, models):
    info = copy.deepcopy(object_info)
    info["UNETLoader"]["input"]["required"]["unet_name"] = ["COMBO", {"options": [], "multiselect": False}]
    assert check_workflow(edit, info, models, models_known=False) == []


def test_the_catalogue_passed_in_is_not_changed(edit, object_info, models):
    before = copy.deepcopy(object_info)
    check_workflow(edit, object_info, models, models_known=False)
    assert object_info == before


def _set_input(node, name, value):
    return lambda g: g[node]["inputs"].__setitem__(name, value)


@pytest.mark.parametrize(
    ("graph_edit", "params_edit", "expected"),
    [
        (_set_input("16", "sampler_name", "euler_fast"), None, "node 16 (KSampler): Value not in list"),
        (_set_input("15", "pixels", ["3", 0]), None, "node 15 (VAEEncode): Return type mismatch"),
        (_set_input("5", "shift", 500.0), None, "node 5 (ModelSamplingAuraFlow): Value 500.0 bigger than max of 100.0"),
        (lambda g: g["5"].__setitem__("class_type", "NoSuchSampling"), None, "NoSuchSampling does not exist"),
        (lambda g: g["2"]["inputs"].pop("type"), None, "node 2 (CLIPLoader): Required input is missing"),
        # Slot 2 cut without its scale node leaves that node without its required image.
        (None, lambda p: p["params"][3]["slots"][1].__setitem__("nodes", ["9"]),
         "[images=1 item(s)]: node 10 (ImageScaleToTotalPixels): Required input is missing"),
        # A declared seed range wider than KSampler's is found by sampling the maximum.
        (None, lambda p: p["params"][2].__setitem__("maximum", 2**64),
         f"[seed={2**64}]: node 16 (KSampler): Value {2**64} bigger than max"),
    ],
)
def test_faults_are_reported(copy_workflow, object_info, models, graph_edit, params_edit, expected):
    workflow = load_workflow(copy_workflow("qwen-image-edit", graph=graph_edit, params=params_edit))
    problems = check_workflow(workflow, object_info, models, models_known=False)
    assert any(expected in p for p in problems), problems


def test_sample_requests_cover_moves_image_counts_and_seed(camera, edit):
    camera_labels = [label for label, _ in sample_requests(camera)]
    assert camera_labels[0] == "base request"
    assert "move='rotate_right', degrees=45" in camera_labels
    assert "move='move_down'" in camera_labels
    assert f"seed={2**53 - 1}" in camera_labels
    assert len(camera_labels) == 1 + 8 + 1
    edit_samples = dict(sample_requests(edit))
    assert len(edit_samples["base request"]["images"]) == 3
    assert len(edit_samples["images=1 item(s)"]["images"]) == 1
    assert "seed" not in edit_samples["base request"]
