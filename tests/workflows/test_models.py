"""ModelFiles: the configured model file names and the ComfyUI folders they live in."""

from __future__ import annotations

import dataclasses

import pytest

from gpuorch.workflows import ModelFiles


def test_defaults_are_the_published_qwen_image_edit_2509_files():
    models = ModelFiles()
    assert models.diffusion_model == "qwen_image_edit_2509_fp8_e4m3fn.safetensors"
    assert models.text_encoder == "qwen_2.5_vl_7b_fp8_scaled.safetensors"
    assert models.vae == "qwen_image_vae.safetensors"
    assert models.lightning_4step_lora == "Qwen-Image-Lightning-4steps-V1.0.safetensors"
    assert models.lightning_8step_lora == "Qwen-Image-Lightning-8steps-V1.1.safetensors"
    assert models.camera_lora.endswith(".safetensors")


def test_by_folder_groups_files_by_comfyui_folder():
    models = ModelFiles(vae="my-vae.safetensors", camera_lora="angles.safetensors")
    assert models.by_folder() == {
        "diffusion_models": ["qwen_image_edit_2509_fp8_e4m3fn.safetensors"],
        "text_encoders": ["qwen_2.5_vl_7b_fp8_scaled.safetensors"],
        "vae": ["my-vae.safetensors"],
        "loras": [
            "Qwen-Image-Lightning-4steps-V1.0.safetensors",
            "Qwen-Image-Lightning-8steps-V1.1.safetensors",
            "angles.safetensors",
        ],
    }


def test_by_folder_lists_a_shared_file_once():
    models = ModelFiles(lightning_4step_lora="same.safetensors", lightning_8step_lora="same.safetensors")
    assert models.by_folder()["loras"].count("same.safetensors") == 1


@pytest.mark.parametrize("bad", ["", "   ", " padded.safetensors", None])
def test_empty_or_padded_names_are_refused(bad):
    with pytest.raises(ValueError, match="ModelFiles.vae"):
        ModelFiles(vae=bad)


def test_roles_folders_and_lookup():
    models = ModelFiles()
    assert ModelFiles.roles() == tuple(f.name for f in dataclasses.fields(ModelFiles))
    assert ModelFiles.folder_of("camera_lora") == "loras"
    assert models.file("vae") == models.vae
    with pytest.raises(KeyError):
        models.file("upscaler")
    with pytest.raises(KeyError):
        ModelFiles.folder_of("upscaler")


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelFiles().vae = "other"  # type: ignore[misc]
