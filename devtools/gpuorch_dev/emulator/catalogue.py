"""The node catalogue the emulator serves: the shipped ``object_info.json`` with live file lists filled in."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Which ComfyUI model folder feeds each loader input's choice list (ComfyUI's folder_paths names).
MODEL_INPUT_FOLDERS: Mapping[tuple[str, str], str] = {
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLora", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLoraModelOnly", "ckpt_name"): "checkpoints",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("CreateHookLora", "lora_name"): "loras",
    ("CreateHookLoraModelOnly", "lora_name"): "loras",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("DiffusersLoader", "model_path"): "diffusers",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("LatentUpscaleModelLoader", "model_name"): "latent_upscale_models",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("ModelPatchLoader", "name"): "model_patches",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("StyleModelLoader", "style_model_name"): "style_models",
}

# Choices ComfyUI appends to a folder's files whatever is installed.
BUILTIN_CHOICES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("VAELoader", "vae_name"): ("pixel_space",),
}

# Loader inputs whose choices are the image files of the input folder.
INPUT_IMAGE_INPUTS: tuple[tuple[str, str], ...] = (("LoadImage", "image"), ("LoadImageMask", "image"))


def load_object_info(path: Path) -> dict[str, Any]:
    """Read a ``GET /object_info`` capture from disk."""
    with Path(path).open(encoding="utf-8") as handle:
        info = json.load(handle)
    if not isinstance(info, dict) or not info:
        raise ValueError(f"{path} is not an object_info catalogue")
    return info


def build_catalogue(base: Mapping[str, Any], model_files: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """A copy of ``base`` whose model-file choice lists hold exactly the configured files.

    Lists the capture happened to contain (the probe server's own model files) are replaced too, so the
    emulator never accepts a file it was not configured with.
    """
    catalogue = copy.deepcopy(dict(base))
    for (class_type, input_name), folder in MODEL_INPUT_FOLDERS.items():
        choices = list(model_files.get(folder, ())) + list(BUILTIN_CHOICES.get((class_type, input_name), ()))
        _set_choices(catalogue, class_type, input_name, choices)
    return catalogue


def with_input_images(catalogue: Mapping[str, Any], image_names: Iterable[str]) -> dict[str, Any]:
    """A shallow copy of ``catalogue`` whose image loaders list ``image_names`` (sorted, as ComfyUI does).

    Only the loader entries are copied; treat the result as read-only.
    """
    names = sorted(image_names)
    snapshot = dict(catalogue)
    for class_type, input_name in INPUT_IMAGE_INPUTS:
        if class_type in snapshot:
            snapshot[class_type] = copy.deepcopy(snapshot[class_type])
            _set_choices(snapshot, class_type, input_name, names)
    return snapshot


def _set_choices(catalogue: dict[str, Any], class_type: str, input_name: str, choices: list[str]) -> None:
    spec = catalogue.get(class_type)
    if spec is None:
        return
    for section in ("required", "optional"):
        entries = spec.get("input", {}).get(section) or {}
        entry = entries.get(input_name)
        if entry is None:
            continue
        if isinstance(entry[0], list):  # old style: [[choices], {extra}]
            entries[input_name] = [list(choices), *entry[1:]]
        elif entry[0] == "COMBO":  # new style: ["COMBO", {"options": [...]}]
            extra = dict(entry[1]) if len(entry) > 1 else {}
            extra["options"] = list(choices)
            entries[input_name] = ["COMBO", extra, *entry[2:]]
