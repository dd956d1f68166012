"""ModelFiles: a setting renames its role's declared model file; every other role keeps its declared name."""

from __future__ import annotations

import dataclasses

import pytest

from gpuorch.workflows import ModelFiles


@pytest.mark.parametrize(("names", "role", "declared", "file"), [
    (ModelFiles(), "vae", "qwen_image_vae.safetensors", "qwen_image_vae.safetensors"),
    (ModelFiles(vae="my-vae.safetensors"), "vae", "qwen_image_vae.safetensors", "my-vae.safetensors"),
    (ModelFiles(vae="my-vae.safetensors"), "camera_lora", "angles.safetensors", "angles.safetensors"),
    # A role no setting names (a new workflow folder's) is always named as declared.
    (ModelFiles(vae="my-vae.safetensors"), "upscaler", "4x-UltraSharp.pth", "4x-UltraSharp.pth"),
])
def test_a_file_is_named_as_declared_unless_its_roles_setting_renames_it(names, role, declared, file):
    assert names.file(role, declared) == file


def test_the_renamable_roles_are_the_settings_fields():
    assert ModelFiles.renamable() == tuple(f.name for f in dataclasses.fields(ModelFiles))
    assert "camera_lora" in ModelFiles.renamable()


@pytest.mark.parametrize("bad", ["   ", " padded.safetensors", "loras/x.safetensors", None])
def test_padded_or_foldered_names_are_refused(bad):
    with pytest.raises(ValueError, match="ModelFiles.vae"):
        ModelFiles(vae=bad)


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelFiles().vae = "other"  # type: ignore[misc]
