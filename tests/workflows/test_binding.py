"""Binding: the graph posted to ComfyUI for a validated request, and nothing else changes."""

from __future__ import annotations

import copy
import json

import pytest

from gpuorch.workflows import BindError, ModelFiles, bind, derive_seed, resolve_params
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from gpuorch.workflows.graph import is_link, structure_problems

IMAGE = "s3://input-bucket/cat.png"
JOB = "0b7c9a52-5d0e-4a57-9a43-2f1f8e9f3c11"


def nodes_of(graph, class_type):
    return {node_id: node for node_id, node in graph.items() if node["class_type"] == class_type}


def value_at(graph, target):
    return graph[target.node]["inputs"][target.input]


def bind_camera(camera, models=None, job=JOB, **request):
    params = camera.request_schema().load({"image": IMAGE, **request})
    return bind(camera, params, ["uploaded.png"], models or ModelFiles(), "jobs/out", job)


def bind_edit(edit, images, models=None, job=JOB, **request):
    params = edit.request_schema().load({"prompt": "Make it snow", "images": images, **request})
    names = [f"upload-{i}.png" for i in range(1, len(images) + 1)]
    return bind(edit, params, names, models or ModelFiles(), "jobs/out", job)


@pytest.mark.parametrize(
    ("move", "degrees", "phrase"),
    [
        ("rotate_left", 45, "将镜头向左旋转45度"),
        ("rotate_right", 90, "将镜头向右旋转90度"),
        ("top_down", None, "将镜头转为俯视"),
        ("close_up", None, "将镜头转为特写镜头"),
        ("wide_angle", None, "将镜头转为广角镜头"),
        ("move_forward", None, "将镜头向前移动"),
        ("move_down", None, "将镜头向下移动"),
    ],
)
def test_camera_move_becomes_its_phrase_in_the_positive_prompt(camera, move, degrees, phrase):
    request = {"move": move} if degrees is None else {"move": move, "degrees": degrees}
    graph = bind_camera(camera, **request)
    (target,) = camera.param("move").targets
    assert value_at(graph, target) == phrase
    assert graph[target.node]["class_type"] == "TextEncodeQwenImageEditPlus"


def test_camera_graph_loads_both_loras_and_samples_8_steps(camera):
    models = ModelFiles(lightning_8step_lora="l8.safetensors", camera_lora="angles.safetensors")
    graph = bind_camera(camera, models=models, move="top_down")
    assert sorted(n["inputs"]["lora_name"] for n in nodes_of(graph, "LoraLoaderModelOnly").values()) == [
        "angles.safetensors",
        "l8.safetensors",
    ]
    (sampler,) = nodes_of(graph, "KSampler").values()
    assert (sampler["inputs"]["steps"], sampler["inputs"]["cfg"]) == (8, 1.0)


def test_model_files_come_from_model_files(edit):
    models = ModelFiles(
        diffusion_model="unet.safetensors",
        text_encoder="te.safetensors",
        vae="vae.safetensors",
        lightning_4step_lora="l4.safetensors",
    )
    graph = bind_edit(edit, [IMAGE], models=models)
    (unet,) = nodes_of(graph, "UNETLoader").values()
    (clip,) = nodes_of(graph, "CLIPLoader").values()
    (vae,) = nodes_of(graph, "VAELoader").values()
    (lora,) = nodes_of(graph, "LoraLoaderModelOnly").values()
    assert unet["inputs"]["unet_name"] == "unet.safetensors"
    assert (clip["inputs"]["clip_name"], clip["inputs"]["type"]) == ("te.safetensors", "qwen_image")
    assert vae["inputs"]["vae_name"] == "vae.safetensors"
    assert lora["inputs"]["lora_name"] == "l4.safetensors"
    assert "{{" not in json.dumps(graph)


def test_output_prefix_goes_to_the_save_node(camera, edit):
    for graph in (bind_camera(camera, move="close_up"), bind_edit(edit, [IMAGE])):
        (save,) = nodes_of(graph, "SaveImage").values()
        assert save["inputs"]["filename_prefix"] == "jobs/out"


def test_prompts_are_bound(edit):
    graph = bind_edit(edit, [IMAGE], negative_prompt="blurry")
    assert value_at(graph, edit.param("prompt").targets[0]) == "Make it snow"
    assert value_at(graph, edit.param("negative_prompt").targets[0]) == "blurry"
    graph = bind_edit(edit, [IMAGE])
    assert value_at(graph, edit.param("negative_prompt").targets[0]) == ""


@pytest.mark.parametrize("count", [1, 2, 3])
def test_unused_image_slots_are_cut_out_cleanly(edit, count):
    graph = bind_edit(edit, [IMAGE] * count)
    loaders = nodes_of(graph, "LoadImage")
    assert sorted(n["inputs"]["image"] for n in loaders.values()) == [f"upload-{i}.png" for i in range(1, count + 1)]
    assert len(nodes_of(graph, "ImageScaleToTotalPixels")) == count
    for encoder in nodes_of(graph, "TextEncodeQwenImageEditPlus").values():
        present = {name for name in ("image1", "image2", "image3") if name in encoder["inputs"]}
        assert present == {f"image{i}" for i in range(1, count + 1)}
    assert structure_problems(graph) == []


def test_images_bind_in_request_order(edit):
    graph = bind_edit(edit, [IMAGE, IMAGE, IMAGE])
    slots = edit.param("images").slots
    assert [value_at(graph, slot.targets[0]) for slot in slots] == ["upload-1.png", "upload-2.png", "upload-3.png"]


def test_no_link_points_at_a_missing_node(camera, edit):
    for graph in (bind_camera(camera, move="move_left"), bind_edit(edit, [IMAGE])):
        for node in graph.values():
            for value in node["inputs"].values():
                if is_link(value):
                    assert value[0] in graph


def test_the_template_is_never_modified(camera, edit):
    on_disk = json.loads((BUILTIN_WORKFLOWS / "qwen-image-edit" / "graph.json").read_text(encoding="utf-8"))
    before = copy.deepcopy(edit.graph)
    graph = bind_edit(edit, [IMAGE])
    graph["16"]["inputs"]["steps"] = 99
    for node in graph.values():
        node["inputs"].clear()
    assert edit.graph == before == on_disk


def test_seed_given_is_used(camera):
    graph = bind_camera(camera, move="top_down", seed=1234)
    assert value_at(graph, camera.param("seed").targets[0]) == 1234


def test_absent_seed_is_derived_from_the_job_id(camera, edit):
    first = bind_camera(camera, move="top_down", job="job-a")
    again = bind_camera(camera, move="top_down", job="job-a")
    other = bind_camera(camera, move="top_down", job="job-b")
    target = camera.param("seed").targets[0]
    assert first == again
    assert value_at(first, target) == derive_seed("job-a")
    assert value_at(other, target) != value_at(first, target)
    assert bind_edit(edit, [IMAGE], job="job-a") == bind_edit(edit, [IMAGE], job="job-a")


@pytest.mark.parametrize(
    ("source", "minimum", "maximum"),
    [("job-1", 0, 2**53 - 1), ("job-2", 0, 2**64 - 1), ("job-3", 10, 10), ("job-4", 5, 7), ("", 0, 1)],
)
def test_derive_seed_is_deterministic_and_in_range(source, minimum, maximum):
    seed = derive_seed(source, minimum, maximum)
    assert minimum <= seed <= maximum
    assert seed == derive_seed(source, minimum, maximum)


def test_resolve_params_fills_defaults_and_seed(edit, camera):
    resolved = resolve_params(edit, {"prompt": "p", "images": [IMAGE]}, "job-x")
    assert resolved == {"prompt": "p", "images": [IMAGE], "negative_prompt": "", "seed": derive_seed("job-x")}
    # An optional parameter without default stays absent.
    assert "degrees" not in resolve_params(camera, {"image": IMAGE, "move": "top_down"}, "job-x")


@pytest.mark.parametrize(
    ("params", "names", "prefix", "problem"),
    [
        ({"prompt": "p", "images": [IMAGE]}, [], "out", "names 1 image(s) but 0 were given"),
        ({"prompt": "p", "images": [IMAGE]}, ["a.png", "b.png"], "out", "names 1 image(s) but 2 were given"),
        ({"prompt": "p", "images": [IMAGE], "colour": "red"}, ["a.png"], "out", "unknown parameter(s) colour"),
        ({"prompt": "p", "images": [IMAGE]}, ["a.png"], "", "output_prefix must be a non-empty string"),
    ],
)
def test_bind_refuses_what_does_not_fit(edit, params, names, prefix, problem):
    with pytest.raises(BindError) as caught:
        bind(edit, params, names, ModelFiles(), prefix, JOB)
    assert problem in str(caught.value)


def test_bind_refuses_a_rotation_without_degrees(camera):
    with pytest.raises(BindError, match="degrees"):
        bind(camera, {"image": IMAGE, "move": "rotate_left"}, ["a.png"], ModelFiles(), "out", JOB)
