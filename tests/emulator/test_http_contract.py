"""Route by route: codes, content types and body shapes against the recorded ComfyUI 0.8.0 answers."""

from __future__ import annotations

import pytest
import requests

from .conftest import DEADLINE_S, shape

JSON = "application/json; charset=utf-8"


def _get(emulator, path: str, **params) -> requests.Response:
    return requests.get(f"{emulator.url}{path}", params=params, timeout=DEADLINE_S)


def _post(emulator, path: str, **kwargs) -> requests.Response:
    return requests.post(f"{emulator.url}{path}", timeout=DEADLINE_S, **kwargs)


def _covers(ours, recorded) -> None:
    """Every key the real server sent is present with the same kind of value (ours may add markers)."""
    if isinstance(recorded, dict):
        assert isinstance(ours, dict)
        for key, value in recorded.items():
            assert key in ours, key
            _covers(ours[key], value)
    elif isinstance(recorded, list) and recorded:
        assert isinstance(ours, list) and ours
        _covers(ours[0], recorded[0])
    elif recorded is not None:
        assert shape(ours) == shape(recorded)


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_system_stats_says_it_is_an_emulator(emulator, basic_trace, prefix):
    response = _get(emulator, f"{prefix}/system_stats")
    recorded = basic_trace["GET /system_stats"]
    assert (response.status_code, response.headers["Content-Type"]) == (recorded["status"], recorded["content_type"])
    body = response.json()
    _covers({**body, "devices": [{**d, "index": None} for d in body["devices"]]}, recorded["json"])
    assert body["emulator"] is True and body["system"]["emulator"] is True
    assert body["system"]["argv"][0] == "gpuorch-comfyui-emulator"
    assert response.headers["Server"].startswith("gpuorch-comfyui-emulator/")


@pytest.mark.parametrize(
    ("path", "record"),
    [
        ("/object_info/ImageInvert", "GET /object_info/ImageInvert"),
        ("/object_info/NoSuchNode", "GET /object_info/NoSuchNode"),
        ("/object_info/ImageScaleBy", "GET /object_info/ImageScaleBy"),
        ("/queue", "GET /queue (idle)"),
        ("/prompt", "GET /prompt (idle)"),
        ("/features", "GET /features"),
        ("/history/unknown-id", "GET /history/unknown-id"),
    ],
)
def test_json_routes_answer_like_comfyui(emulator, basic_trace, path, record):
    recorded = basic_trace[record]
    for prefix in ("", "/api"):
        response = _get(emulator, prefix + path)
        assert response.status_code == recorded.get("status", 200)
        assert response.headers["Content-Type"] == recorded.get("content_type", JSON)
        assert response.json() == recorded["json"]


def test_object_info_lists_every_class(emulator):
    catalogue = _get(emulator, "/object_info").json()
    assert len(catalogue) == 545
    assert catalogue["SaveImage"]["output_node"] is True


@pytest.mark.parametrize(
    ("path", "kwargs", "record"),
    [
        ("/prompt", {"json": {"foo": 1}}, "POST /prompt invalid: no prompt key"),
        (
            "/prompt",
            {"data": b"not json{", "headers": {"Content-Type": "application/json"}},
            "POST /prompt invalid: body not JSON",
        ),
        ("/free", {"json": {"unload_models": True, "free_memory": True}}, "POST /free"),
        ("/free", {}, "POST /free (no body)"),
        ("/interrupt", {}, "POST /interrupt (no body)"),
        ("/interrupt", {"json": {}}, "POST /interrupt (global, {})"),
        ("/upload/image", {"data": {"overwrite": "true"}}, "POST /upload/image (no image field)"),
    ],
)
def test_posts_answer_like_comfyui(emulator, basic_trace, path, kwargs, record):
    recorded = basic_trace[record]
    response = _post(emulator, path, **kwargs)
    assert response.status_code == recorded["status"]
    if recorded.get("json") is not None:
        assert response.headers["Content-Type"] == recorded["content_type"]
        assert response.json() == recorded["json"]
    else:
        assert response.text == recorded["text"]
    if "content_type" in recorded and recorded.get("json") is None:
        assert response.headers.get("Content-Type") == recorded["content_type"]


@pytest.mark.parametrize(
    "record",
    [
        "POST /prompt invalid: unknown class_type",
        "POST /prompt invalid: missing class_type",
        "POST /prompt invalid: missing required input",
        "POST /prompt invalid: no output node",
        "POST /prompt invalid: link to missing node",
    ],
)
def test_invalid_prompts_get_the_recorded_400(emulator, basic_trace, record):
    recorded = basic_trace[record]
    response = _post(emulator, "/prompt", json=recorded["request"])
    assert (response.status_code, response.headers["Content-Type"]) == (400, JSON)
    body = response.json()
    for entry in body["node_errors"].values():
        for error in entry["errors"]:
            error["extra_info"].pop("traceback", None)
    for entry in recorded["json"]["node_errors"].values():
        for error in entry["errors"]:
            error["extra_info"].pop("traceback", None)
    assert body == recorded["json"]


def test_missing_file_and_bad_values_are_reported_per_node(emulator, basic_trace):
    recorded = basic_trace["POST /prompt invalid: bad value (scale_by out of range, bad enum, missing file)"]
    response = _post(emulator, "/prompt", json=recorded["request"])
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == recorded["json"]["error"]
    for node_id, entry in recorded["json"]["node_errors"].items():
        ours = body["node_errors"][node_id]
        assert ours["class_type"] == entry["class_type"] and ours["dependent_outputs"] == entry["dependent_outputs"]
        key = lambda error: error["type"]  # noqa: E731 - ComfyUI's error order follows a set
        assert sorted(ours["errors"], key=key) == sorted(entry["errors"], key=key)


def test_view_missing_file_is_an_empty_404(emulator, basic_trace):
    recorded = basic_trace["GET /view (missing file)"]
    response = _get(emulator, "/view", filename="nope.png", subfolder="", type="output")
    assert (response.status_code, response.text) == (recorded["status"], recorded["text"])


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"filename": "../secret.png"}, 400),
        ({"filename": "/etc/passwd"}, 400),
        ({"filename": "x.png", "subfolder": "../.."}, 403),
        ({"filename": "x.png", "type": "models"}, 400),
    ],
)
def test_view_refuses_paths_outside_its_folders(emulator, params, status):
    assert _get(emulator, "/view", **params).status_code == status
