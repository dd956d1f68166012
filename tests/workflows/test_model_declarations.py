"""models.json: each workflow folder declares the model files it loads, checked when the folder loads."""

from __future__ import annotations

import json

import pytest

from gpuorch.model_files import ModelFiles
from gpuorch.workflows import WorkflowDefinitionError, load_workflow, load_workflows
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from gpuorch.workflows.graph import find_placeholders
from gpuorch.workflows.models import MODELS_FILE, describe, model_files

SHA = "0" * 64


def test_the_builtin_workflows_declare_every_model_they_load(workflows):
    for workflow in workflows:
        loaded = {p.model_role for p in find_placeholders(workflow.graph) if p.model_role}
        assert {m.role for m in workflow.models} == loaded, workflow.name
        for model in workflow.models:
            assert workflow.model_file(model.role, ModelFiles()) == model.name
            assert model.source.startswith("https://huggingface.co/")


def test_the_builtin_workflows_need_six_files_shared_between_them(workflows):
    files = model_files(workflows, ModelFiles())

    assert sorted(f.path for f in files) == [
        "diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors",
        "loras/Qwen-Edit-2509-Multiple-angles.safetensors",
        "loras/Qwen-Image-Lightning-4steps-V1.0.safetensors",
        "loras/Qwen-Image-Lightning-8steps-V1.1.safetensors",
        "text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
        "vae/qwen_image_vae.safetensors",
    ]
    shared = {f.path: f.workflows for f in files}["diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors"]
    assert shared == ("camera-angle", "qwen-image-edit")
    # The bytes a cold start reads (the cost model's load time): about 31 GiB in all.
    assert describe(files)["bytes"] == 33_703_194_590
    assert workflows["camera-angle"].model_bytes == 32_004_243_486
    assert workflows["qwen-image-edit"].model_bytes == 31_768_126_454


def test_a_setting_renames_a_declared_file_keeping_what_it_must_hold(workflows):
    files = {f.path: f for f in model_files(workflows, ModelFiles(camera_lora="angles.safetensors"))}

    renamed = files["loras/angles.safetensors"]
    assert renamed.source_name == "Qwen-Edit-2509-Multiple-angles.safetensors" and renamed.bytes == 236_117_032


def with_models(copy_workflow, data):
    folder = copy_workflow("qwen-image-edit")
    (folder / MODELS_FILE).write_text(json.dumps(data), encoding="utf-8")
    return folder


BUILTIN_EDIT = json.loads((BUILTIN_WORKFLOWS / "qwen-image-edit" / MODELS_FILE).read_text(encoding="utf-8"))


def edited(index: int, **fields) -> dict:
    models = [dict(m) for m in BUILTIN_EDIT["models"]]
    models[index] = {**models[index], **fields}
    return {"models": [{k: v for k, v in m.items() if v is not None} for m in models]}


@pytest.mark.parametrize("data,problem", [
    ([], 'expected an object {"models": [...]}'),
    ({"models": []}, "top level: 'models' must be a non-empty list"),
    ({"models": BUILTIN_EDIT["models"], "extra": 1}, "top level: unknown key(s) 'extra'"),
    (edited(2, sha256="ABC"), "models[2] (vae): 'sha256' must be 64 lower-case hexadecimal digits, not 'ABC'"),
    (edited(2, sha256=None), "models[2] (vae): missing 'sha256'"),
    (edited(2, bytes=0), "models[2] (vae): 'bytes' must be a positive integer, not 0"),
    (edited(2, bytes="254 MB"), "models[2] (vae): 'bytes' must be a positive integer, not '254 MB'"),
    (edited(2, folder="../vae"), "models[2] (vae): 'folder' must be one sub-folder of ComfyUI's models/"),
    (edited(2, role="VAE"), "models[2]: 'role' must be a parameter name (lower_case), not 'VAE'"),
    (edited(2, role="unet"), "graph.json loads {{models.vae}}: declare each here"),
    (edited(2, name="../vae.safetensors"), "models[2] (vae): 'name' must be a file name"),
    (edited(2, source="http://example.com/vae"), "models[2] (vae): 'source' must be an s3://bucket/key URI or an "
                                                 "https:// URL, not 'http://example.com/vae'"),
    (edited(2, source="s3://models"), "models[2] (vae): 'source' 's3://models': an s3:// URI needs an object key"),
    (edited(2, checksum="x"), "models[2] (vae): unknown key(s) 'checksum'"),
    (edited(2, role="text_encoder", folder="text_encoders"), "role 'text_encoder' is declared twice"),
    ({"models": BUILTIN_EDIT["models"][:3]},
     "graph.json loads {{models.lightning_4step_lora}}: declare each here"),
])
def test_a_bad_declaration_names_the_file_the_entry_and_the_field(copy_workflow, data, problem):
    folder = with_models(copy_workflow, data)

    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(folder)

    assert caught.value.path == folder / MODELS_FILE
    assert problem in caught.value.problem


def test_a_graph_that_loads_models_without_a_declaration_is_refused(copy_workflow):
    folder = copy_workflow("camera-angle")
    (folder / MODELS_FILE).unlink()

    with pytest.raises(WorkflowDefinitionError) as caught:
        load_workflow(folder)

    assert caught.value.path == folder / MODELS_FILE
    assert caught.value.problem.startswith("file not found: graph.json loads camera_lora, diffusion_model, "
                                           "lightning_8step_lora, text_encoder, vae; declare each model file here")


def test_two_workflows_declaring_other_bytes_for_one_file_are_refused(tmp_path, copy_workflow):
    with_models(copy_workflow, edited(2, bytes=10, sha256=SHA))
    copy_workflow("camera-angle")

    with pytest.raises(WorkflowDefinitionError) as caught:
        model_files(load_workflows(tmp_path), ModelFiles())

    assert "vae/qwen_image_vae.safetensors as 10 bytes, sha256 " + SHA in str(caught.value)
    assert "camera-angle declares 253806246 bytes" in str(caught.value)
