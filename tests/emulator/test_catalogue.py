"""The served catalogue: model-file lists from the configuration, enforced by validation over HTTP."""

from __future__ import annotations

import pytest
import requests

from gpuorch_dev.emulator.catalogue import (
    MODEL_INPUT_FOLDERS,
    build_catalogue,
    load_object_info,
    with_input_images,
)
from gpuorch_dev.emulator.config import DEFAULT_OBJECT_INFO_PATH, EmulatorConfig, parse_model_files

from .conftest import DEADLINE_S, MODEL_FILES, png_bytes, submit, upload
from .test_progress import edit_graph

BASE = load_object_info(DEFAULT_OBJECT_INFO_PATH)


def _choices(catalogue: dict, class_type: str, input_name: str) -> list[str]:
    entry = catalogue[class_type]["input"]["required"][input_name]
    return entry[0] if isinstance(entry[0], list) else entry[1]["options"]


@pytest.mark.parametrize(
    ("class_type", "input_name", "expected"),
    [
        ("UNETLoader", "unet_name", ["u.safetensors"]),
        ("CLIPLoader", "clip_name", ["t.safetensors"]),
        ("VAELoader", "vae_name", ["v.safetensors", "pixel_space"]),
        ("LoraLoaderModelOnly", "lora_name", ["l1.safetensors", "l2.safetensors"]),
        ("QuadrupleCLIPLoader", "clip_name3", ["t.safetensors"]),
        ("UpscaleModelLoader", "model_name", []),  # the capture's own file is not ours
        ("CheckpointLoaderSimple", "ckpt_name", []),
    ],
)
def test_model_lists_come_from_configuration(class_type, input_name, expected):
    files = {
        "diffusion_models": ["u.safetensors"],
        "text_encoders": ["t.safetensors"],
        "vae": ["v.safetensors"],
        "loras": ["l1.safetensors", "l2.safetensors"],
    }
    assert _choices(build_catalogue(BASE, files), class_type, input_name) == expected


def test_extra_info_is_kept():
    catalogue = build_catalogue(BASE, {"checkpoints": ["c.safetensors"]})
    entry = catalogue["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    assert entry == [["c.safetensors"], BASE["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][1]]
    assert catalogue["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["multiselect"] is False


def test_every_mapped_input_exists_in_the_catalogue():
    for class_type, input_name in MODEL_INPUT_FOLDERS:
        inputs = BASE[class_type]["input"]
        assert input_name in {**inputs.get("required", {}), **inputs.get("optional", {})}, (class_type, input_name)


def test_base_catalogue_is_not_mutated():
    before = BASE["UNETLoader"]["input"]["required"]["unet_name"]
    build_catalogue(BASE, {"diffusion_models": ["x"]})
    with_input_images(BASE, ["a.png"])
    assert BASE["UNETLoader"]["input"]["required"]["unet_name"] == before == [[]]
    assert "example.png" in BASE["LoadImage"]["input"]["required"]["image"][0]


def test_input_images_replace_the_capture_list():
    snapshot = with_input_images(BASE, ["b.png", "a.png"])
    assert snapshot["LoadImage"]["input"]["required"]["image"][0] == ["a.png", "b.png"]
    assert snapshot["LoadImageMask"]["input"]["required"]["image"][0] == ["a.png", "b.png"]
    assert snapshot["ImageInvert"] is BASE["ImageInvert"]


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([], {}),
        (
            ["loras=a.safetensors", "loras=b.safetensors", "vae = v.safetensors"],
            {"loras": ("a.safetensors", "b.safetensors"), "vae": ("v.safetensors",)},
        ),
        (["loras=a", "loras=a"], {"loras": ("a",)}),
    ],
)
def test_parse_model_files(specs, expected):
    assert parse_model_files(specs) == expected


@pytest.mark.parametrize("spec", ["loras", "=a", "loras=", ""])
def test_parse_model_files_rejects_malformed(spec):
    with pytest.raises(ValueError):
        parse_model_files([spec])


def test_config_rejects_negative_step_time(tmp_path):
    with pytest.raises(ValueError):
        EmulatorConfig(data_dir=tmp_path, step_seconds=-1)


def test_unknown_model_file_fails_validation_like_a_real_server(emulator):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    graph = edit_graph()
    graph["4"]["inputs"]["lora_name"] = "not-installed.safetensors"
    response = submit(emulator, graph)
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    (reason,) = body["node_errors"]["4"]["errors"]
    assert reason["type"] == "value_not_in_list"
    assert reason["details"] == f"lora_name: 'not-installed.safetensors' not in {list(MODEL_FILES['loras'])}"
    assert body["node_errors"]["4"]["dependent_outputs"] == ["14"]


def test_configured_model_files_are_served_and_accepted(emulator):
    info = requests.get(f"{emulator.url}/object_info/LoraLoaderModelOnly", timeout=DEADLINE_S).json()
    assert info["LoraLoaderModelOnly"]["input"]["required"]["lora_name"][0] == list(MODEL_FILES["loras"])
    upload(emulator, "ref.png", png_bytes((120, 80)))
    assert submit(emulator, edit_graph()).status_code == 200


def test_no_model_files_configured_rejects_every_loader(start_emulator):
    emulator = start_emulator(model_files={})
    upload(emulator, "ref.png", png_bytes((120, 80)))
    body = submit(emulator, edit_graph()).json()
    assert {"1", "2", "3", "4"} <= set(body["node_errors"])
