"""Table-driven tests of validate_prompt against the recorded ComfyUI 400 bodies and the catalogue's rules."""

from __future__ import annotations

import copy
import json

import pytest

from gpuorch.comfyui.validation import check_prompt, validate_node_input, validate_prompt
from tests.paths import REPO

TRACE = json.loads((REPO / "tests/fixtures/comfyui/traces/http-and-ws-basic.json").read_text())
BASE_CATALOGUE = json.loads((REPO / "configs/comfyui/object_info.json").read_text())


@pytest.fixture(scope="module")
def catalogue() -> dict:
    """The shipped catalogue with the probe's input folder and one model file per loader used below."""
    info = copy.deepcopy(BASE_CATALOGUE)
    info["LoadImage"]["input"]["required"]["image"][0] = ["probe_src.png", "corrupt.png"]
    info["UNETLoader"]["input"]["required"]["unet_name"][0] = ["qwen_image_edit.safetensors"]
    return info


def _comparable(body):
    """Drop tracebacks (paths differ) and sort each node's errors (ComfyUI iterates a set)."""
    if isinstance(body, dict):
        out = {k: _comparable(v) for k, v in body.items() if k != "traceback"}
        if "errors" in out and isinstance(out["errors"], list):
            out["errors"] = sorted(out["errors"], key=lambda e: (e["type"], e["details"]))
        return out
    if isinstance(body, list):
        return [_comparable(v) for v in body]
    return body


def _canonical(body):
    return json.loads(json.dumps(body, sort_keys=True))


TRACE_CASES = [
    name
    for name, rec in TRACE.items()
    if name.startswith("POST /prompt invalid") and "prompt" in rec.get("request", {})
]


@pytest.mark.parametrize("case", TRACE_CASES)
def test_matches_recorded_400_body(case, catalogue):
    record = TRACE[case]
    error, node_errors = validate_prompt(record["request"]["prompt"], catalogue)
    assert _canonical(_comparable({"error": error, "node_errors": node_errors})) == _canonical(
        _comparable(record["json"])
    )


def _node(cls, **inputs):
    return {"class_type": cls, "inputs": inputs}


def _save(source="2"):
    return _node("SaveImage", images=[source, 0], filename_prefix="x")


LOAD = _node("LoadImage", image="probe_src.png")

# (name, graph, expected error type or None, {node id: [error types]})
CASES = [
    ("valid chain", {"1": LOAD, "2": _node("ImageInvert", image=["1", 0]), "3": _save()}, None, {}),
    (
        "int below min",
        {
            "1": LOAD,
            "2": _node("ImageScale", image=["1", 0], upscale_method="area", width=-1, height=8, crop="disabled"),
            "3": _save(),
        },
        "prompt_outputs_failed_validation",
        {"2": ["value_smaller_than_min"]},
    ),
    (
        "int not convertible",
        {
            "1": LOAD,
            "2": _node("ImageScale", image=["1", 0], upscale_method="area", width="wide", height=8, crop="disabled"),
            "3": _save(),
        },
        "prompt_outputs_failed_validation",
        {"2": ["invalid_input_type"]},
    ),
    (
        "float given as string converts",
        {"1": LOAD, "2": _node("ImageScaleBy", image=["1", 0], upscale_method="area", scale_by="0.5"), "3": _save()},
        None,
        {},
    ),
    (
        "new-style combo",
        {
            "1": LOAD,
            "2": _node(
                "ImageScaleToTotalPixels", image=["1", 0], upscale_method="nope", megapixels=1.0, resolution_steps=1
            ),
            "3": _save(),
        },
        "prompt_outputs_failed_validation",
        {"2": ["value_not_in_list"]},
    ),
    (
        "link type mismatch",
        {"1": LOAD, "2": _node("ImageInvert", image=["1", 1]), "3": _save()},
        "prompt_outputs_failed_validation",
        {"2": ["return_type_mismatch"]},
    ),
    (
        "bad link shape",
        {"1": LOAD, "2": _node("ImageInvert", image=["1", 0, 2]), "3": _save()},
        "prompt_outputs_failed_validation",
        {"2": ["bad_linked_input"]},
    ),
    (
        "unknown model file",
        {
            "1": _node("UNETLoader", unet_name="other.safetensors", weight_dtype="default"),
            "2": _node("LoadImage", image="probe_src.png"),
            "3": _save("2"),
        },
        None,
        {},
    ),  # the loader is not reachable from the output, so it is not validated
    (
        "missing file",
        {"1": _node("LoadImage", image="gone.png"), "2": _save("1")},
        "prompt_outputs_failed_validation",
        {"1": ["custom_validation_failed"]},
    ),
    ("optional input omitted", {"1": _node("CLIPLoader", clip_name="x", type="qwen_image")}, "prompt_no_outputs", {}),
    (
        "inner link to missing node",
        {"1": LOAD, "2": _node("ImageInvert", image=["99", 0]), "3": _save()},
        "prompt_outputs_failed_validation",
        {"2": ["exception_during_inner_validation"]},
    ),
    (
        "node without inputs key",
        {"1": {"class_type": "SaveImage"}},
        "prompt_outputs_failed_validation",
        {"1": ["exception_during_validation"]},
    ),
]


@pytest.mark.parametrize(("graph", "error_type", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_types(graph, error_type, expected, catalogue):
    error, node_errors = validate_prompt(graph, catalogue)
    assert (error["type"] if error else None) == error_type
    assert {nid: [e["type"] for e in entry["errors"]] for nid, entry in node_errors.items()} == expected


def test_inner_exception_is_attributed_to_the_linked_node(catalogue):
    graph = {
        "1": LOAD,
        "2": _node("ImageInvert", image=["1", 0]),
        "3": _node("ImageInvert", image=["2", 0]),
        "4": _save("3"),
    }
    graph["2"]["inputs"]["image"] = ["99", 0]
    _, node_errors = validate_prompt(graph, catalogue)
    # Node 2's own KeyError surfaces while node 3 validates it: ComfyUI files it under node 2.
    assert list(node_errors) == ["2"]
    extra = node_errors["2"]["errors"][0]["extra_info"]
    assert extra["exception_type"] == "KeyError" and extra["linked_node"] == ["2", 0]
    assert node_errors["2"]["dependent_outputs"] == ["4"]


def _sampler_graph(unet_name: str) -> dict:
    return {
        "1": _node("UNETLoader", unet_name=unet_name, weight_dtype="default"),
        "2": _node("EmptySD3LatentImage", width=64, height=64, batch_size=1),
        "3": _node("CLIPLoader", clip_name="c", type="qwen_image"),
        "4": _node("CLIPTextEncode", clip=["3", 0], text="t"),
        "5": _node(
            "KSampler",
            model=["1", 0],
            seed=1,
            steps=2,
            cfg=1.0,
            sampler_name="euler",
            scheduler="simple",
            positive=["4", 0],
            negative=["4", 0],
            latent_image=["2", 0],
            denoise=1.0,
        ),
        "6": _node("VAEDecode", samples=["5", 0], vae=["7", 0]),
        "7": _node("VAELoader", vae_name="pixel_space"),
        "8": _node("SaveImage", images=["6", 0], filename_prefix="x"),
    }


def test_model_file_list_is_enforced(catalogue):
    info = copy.deepcopy(catalogue)
    info["CLIPLoader"]["input"]["required"]["clip_name"][0] = ["c"]
    assert validate_prompt(_sampler_graph("qwen_image_edit.safetensors"), info) == (None, {})
    error, node_errors = validate_prompt(_sampler_graph("missing.safetensors"), info)
    assert error["type"] == "prompt_outputs_failed_validation"
    (reason,) = node_errors["1"]["errors"]
    assert reason["type"] == "value_not_in_list"
    assert reason["details"] == "unet_name: 'missing.safetensors' not in ['qwen_image_edit.safetensors']"
    assert node_errors["1"]["dependent_outputs"] == ["8"]


def test_long_option_lists_are_summarised(catalogue):
    info = copy.deepcopy(catalogue)
    info["UNETLoader"]["input"]["required"]["unet_name"][0] = [f"m{i}.safetensors" for i in range(25)]
    info["CLIPLoader"]["input"]["required"]["clip_name"][0] = ["c"]
    error, node_errors = validate_prompt(_sampler_graph("nope"), info)
    assert error["type"] == "prompt_outputs_failed_validation"
    (reason,) = node_errors["1"]["errors"]
    assert reason["details"] == "unet_name: 'nope' not in (list of length 25)"
    assert reason["extra_info"]["input_config"] is None


def test_partial_failure_accepts_with_node_errors(catalogue):
    graph = {"1": LOAD, "2": _save("1"), "3": _node("LoadImage", image="gone.png"), "4": _save("3")}
    check = check_prompt(graph, catalogue)
    assert check.ok and check.outputs == ["2"]
    assert check.node_errors["3"]["dependent_outputs"] == ["4"]


def test_partial_execution_targets(catalogue):
    graph = {"1": LOAD, "2": _save("1"), "3": _node("LoadImage", image="gone.png"), "4": _save("3")}
    assert check_prompt(graph, catalogue, partial_execution_targets=["2"]).outputs == ["2"]
    assert (
        validate_prompt(graph, catalogue, partial_execution_targets=["4"])[0]["type"]
        == "prompt_outputs_failed_validation"
    )


def test_file_exists_hook_overrides_catalogue(catalogue):
    graph = {"1": _node("LoadImage", image="out.png [output]"), "2": _save("1")}
    assert validate_prompt(graph, catalogue)[0] is not None
    assert validate_prompt(graph, catalogue, file_exists=lambda name: name == "out.png [output]") == (None, {})


def test_graph_is_not_mutated(catalogue):
    graph = {"1": LOAD, "2": _node("ImageScaleBy", image=["1", 0], upscale_method="area", scale_by="0.5"), "3": _save()}
    before = copy.deepcopy(graph)
    validate_prompt(graph, catalogue)
    assert graph == before


@pytest.mark.parametrize(
    ("received", "accepted", "ok"),
    [
        ("IMAGE", "IMAGE", True),
        ("IMAGE", "MASK", False),
        ("IMAGE,MASK", "MASK", True),
        ("*", "LATENT", True),
        ("MODEL", "*", True),
        ("STRING", ["a", "b"], False),
        ("COMBO", "COMBO", True),
    ],
)
def test_validate_node_input(received, accepted, ok):
    assert validate_node_input(received, accepted) is ok
