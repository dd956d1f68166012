"""Running real image graphs: websocket frame order, history and files, checked against the recorded traces."""

from __future__ import annotations

import io

import requests
from PIL import Image, ImageOps

from .conftest import DEADLINE_S, history, new_client_id, png_bytes, shape, submit, upload, wait_history


def _graph(image: str = "src.png", prefix: str = "probe") -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {
            "class_type": "ImageScaleBy",
            "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "scale_by": 0.5},
        },
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": prefix}},
    }


def _history_shape(entry: dict) -> dict:
    """The shape of a history entry, with the graph (which differs between our graph and the trace's) left out."""
    prompt = list(entry["prompt"])
    prompt[2] = "graph"
    return shape({**entry, "prompt": prompt})


def _trace_types(trace: dict, key: str) -> list[str]:
    return [entry["msg"]["type"] for entry in trace[key]]


def test_valid_run_matches_trace(emulator, connect, basic_trace):
    client_id = new_client_id()
    source = png_bytes((64, 48))
    assert upload(emulator, "src.png", source).status_code == 200
    recorder = connect(emulator, client_id)

    response = submit(emulator, _graph(), client_id)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert shape(response.json()) == shape(basic_trace["POST /prompt (valid)"]["json"])
    prompt_id = response.json()["prompt_id"]
    recorder.wait_done(prompt_id)

    assert recorder.types() == _trace_types(basic_trace, "WS messages (valid run)")
    frames = recorder.snapshot()
    expected = [entry["msg"] for entry in basic_trace["WS messages (valid run)"]]
    for got, want in zip(frames, expected, strict=True):
        assert shape(got) == shape(want), got["type"]
    assert [f["data"]["node"] for f in frames if f["type"] == "executing"] == ["1", "2", "3", "4", None]

    entry = history(emulator, prompt_id)
    recorded = next(iter(basic_trace["GET /history/{id} (valid run)"]["json"].values()))
    assert _history_shape(entry[prompt_id]) == _history_shape(recorded)
    assert entry[prompt_id]["prompt"][:2] == [0, prompt_id] and entry[prompt_id]["prompt"][4] == ["4"]
    assert entry[prompt_id]["prompt"][2] == _graph()
    (image,) = entry[prompt_id]["outputs"]["4"]["images"]
    assert image == {"filename": "probe_00001_.png", "subfolder": "", "type": "output"}

    view = requests.get(f"{emulator.url}/view", params=image, timeout=DEADLINE_S)
    assert view.status_code == 200 and view.headers["Content-Type"] == "image/png"
    assert view.headers["Content-Disposition"] == 'filename="probe_00001_.png"'
    output = Image.open(io.BytesIO(view.content)).convert("RGB")
    expected_image = ImageOps.invert(Image.open(io.BytesIO(source)).convert("RGB").resize((32, 24), Image.NEAREST))
    assert output.size == (32, 24)
    assert output.tobytes() == expected_image.tobytes()


def test_identical_resubmit_is_served_from_cache(emulator, connect, basic_trace):
    upload(emulator, "src.png", png_bytes())
    first = submit(emulator, _graph(), new_client_id()).json()["prompt_id"]
    wait_history(emulator, first)
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    second = submit(emulator, _graph(), client_id).json()["prompt_id"]
    recorder.wait_done(second)

    assert recorder.types() == _trace_types(basic_trace, "WS messages (cached rerun)")
    cached = recorder.wait_for(lambda f: f["type"] == "execution_cached")
    assert cached["data"]["nodes"] == ["1", "2", "3", "4"]
    first_outputs = history(emulator, first)[first]["outputs"]
    assert history(emulator, second)[second]["outputs"] == first_outputs
    output_dir = emulator.emulator.config.output_dir
    assert sorted(p.name for p in output_dir.iterdir()) == ["probe_00001_.png"]


def test_new_bytes_under_the_same_name_are_not_cached(emulator, connect):
    upload(emulator, "src.png", png_bytes(seed=1))
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    first = submit(emulator, _graph(), client_id).json()["prompt_id"]
    recorder.wait_done(first)
    upload(emulator, "src.png", png_bytes(seed=2), overwrite="true")
    second = submit(emulator, _graph(), client_id).json()["prompt_id"]
    recorder.wait_done(second)
    cached = [f["data"]["nodes"] for f in recorder.snapshot() if f["type"] == "execution_cached"]
    assert cached == [[], []]
    assert history(emulator, second)[second]["outputs"]["4"]["images"][0]["filename"] == "probe_00002_.png"


def test_prompt_without_client_id_sends_no_execution_frames(emulator, connect, basic_trace):
    upload(emulator, "src.png", png_bytes())
    listener = connect(emulator, new_client_id())
    prompt_id = submit(emulator, _graph(prefix="quiet")).json()["prompt_id"]
    # No final executing frame exists for such a prompt: poll history with a deadline instead.
    wait_history(emulator, prompt_id)
    listener.wait_for(
        lambda f: (
            f["type"] == "status"
            and f["data"]["status"]["exec_info"]["queue_remaining"] == 0
            and "sid" not in f["data"]
        )
    )
    types = set(listener.types())
    assert types <= set(_trace_types(basic_trace, "WS messages (run without client_id, seen by other listener)"))
    assert "executing" not in types and "execution_start" not in types


def test_runtime_error_matches_trace(emulator, connect, basic_trace):
    corrupt = emulator.emulator.config.input_dir / "corrupt.png"
    corrupt.write_bytes(b"this is not a png")
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    prompt_id = submit(emulator, _graph("corrupt.png", "probe_err"), client_id).json()["prompt_id"]
    recorder.wait_done(prompt_id)

    assert recorder.types() == _trace_types(basic_trace, "WS messages (runtime error)")
    error = recorder.wait_for(lambda f: f["type"] == "execution_error")["data"]
    recorded = next(
        m["msg"]["data"] for m in basic_trace["WS messages (runtime error)"] if m["msg"]["type"] == "execution_error"
    )
    assert shape(error) | {"traceback": "list"} == shape(recorded) | {"traceback": "list"}
    assert error["exception_type"] == "PIL.UnidentifiedImageError"
    assert error["node_id"] == "1" and error["node_type"] == "LoadImage"
    assert error["current_inputs"] == {"image": ["corrupt.png"]}
    assert sorted(error["current_outputs"]) == ["1", "2", "3", "4"]

    entry = history(emulator, prompt_id)[prompt_id]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["outputs"] == {} and entry["meta"] == {}
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_error"]


def test_preview_image_goes_to_temp(emulator, connect, progress_trace):
    upload(emulator, "src.png", png_bytes())
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    prompt_id = submit(emulator, graph, client_id).json()["prompt_id"]
    recorder.wait_done(prompt_id)
    outputs = history(emulator, prompt_id)[prompt_id]["outputs"]
    assert shape(outputs["2"]) == shape(progress_trace["history outputs (PreviewImage -> temp)"]["6"])
    (image,) = outputs["2"]["images"]
    assert image["type"] == "temp" and image["filename"].startswith("ComfyUI_temp_")
    view = requests.get(f"{emulator.url}/view", params=image, timeout=DEADLINE_S)
    assert view.status_code == 200 and view.headers["Content-Type"] == "image/png"


def test_save_image_subfolder_from_prefix(emulator, connect):
    upload(emulator, "src.png", png_bytes())
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    prompt_id = submit(emulator, _graph(prefix="jobs/abc/result"), client_id).json()["prompt_id"]
    recorder.wait_done(prompt_id)
    (image,) = history(emulator, prompt_id)[prompt_id]["outputs"]["4"]["images"]
    assert image == {"filename": "result_00001_.png", "subfolder": "jobs/abc", "type": "output"}
    assert requests.get(f"{emulator.url}/view", params=image, timeout=DEADLINE_S).status_code == 200
