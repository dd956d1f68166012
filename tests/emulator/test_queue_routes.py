"""Queue and history routes: interrupt, queue delete, numbering, unexecutable classes, stats."""

from __future__ import annotations

import uuid

import requests

from gpuorch_dev.emulator import ExecutionHooks

from .conftest import DEADLINE_S, history, new_client_id, png_bytes, shape, submit, upload, wait_history
from .test_progress import edit_graph


def _slow(emulator, connect, client_id: str | None = None, steps: int = 5000):
    """Start a sampler run that takes far longer than any test, and wait until it is stepping."""
    upload(emulator, "ref.png", png_bytes((120, 80)))
    client_id = client_id or new_client_id()
    recorder = connect(emulator, client_id)
    prompt_id = submit(emulator, edit_graph(steps=steps), client_id).json()["prompt_id"]
    recorder.wait_for(lambda f: f["type"] == "progress" and f["data"]["prompt_id"] == prompt_id)
    return recorder, prompt_id


def test_interrupt_stops_the_running_prompt(start_emulator, connect, basic_trace):
    emulator = start_emulator(step_seconds=0.01)
    recorder, prompt_id = _slow(emulator, connect)
    response = requests.post(f"{emulator.url}/interrupt", json={}, timeout=DEADLINE_S)
    assert response.status_code == 200 and response.text == ""
    recorder.wait_done(prompt_id)

    interrupted = recorder.wait_for(lambda f: f["type"] == "execution_interrupted")["data"]
    recorded = basic_trace["GET /history/{id} (interrupted)"]["json"]
    recorded_message = next(iter(recorded.values()))["status"]["messages"][-1]
    assert shape(interrupted) == shape(recorded_message[1])
    assert interrupted["node_id"] == "12" and interrupted["node_type"] == "KSampler"
    assert "traceback" not in interrupted
    types = recorder.types()
    assert types[-3:] == ["execution_interrupted", "status", "executing"]

    entry = history(emulator, prompt_id)[prompt_id]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert entry["outputs"] == {}


def test_interrupt_for_another_prompt_is_ignored(start_emulator, connect):
    emulator = start_emulator(step_seconds=0.01)
    recorder, prompt_id = _slow(emulator, connect, steps=30)
    response = requests.post(f"{emulator.url}/interrupt", json={"prompt_id": str(uuid.uuid4())}, timeout=DEADLINE_S)
    assert response.status_code == 200 and response.text == ""
    recorder.wait_done(prompt_id)
    assert history(emulator, prompt_id)[prompt_id]["status"]["status_str"] == "success"


def test_queue_delete_removes_a_pending_prompt(start_emulator, connect, basic_trace):
    emulator = start_emulator(step_seconds=0.01)
    recorder, running_id = _slow(emulator, connect)
    pending_id = submit(emulator, edit_graph(seed=99, steps=5000), new_client_id()).json()["prompt_id"]

    queue = requests.get(f"{emulator.url}/queue", timeout=DEADLINE_S).json()
    assert [item[1] for item in queue["queue_running"]] == [running_id]
    assert [item[1] for item in queue["queue_pending"]] == [pending_id]
    assert all(len(item) == 5 for item in queue["queue_running"] + queue["queue_pending"])
    recorded_item = basic_trace["GET /queue (busy, trimmed)"]["json"]["queue_running"][0]
    assert shape(queue["queue_running"][0][3]) == shape(recorded_item[3])
    assert requests.get(f"{emulator.url}/prompt", timeout=DEADLINE_S).json() == {"exec_info": {"queue_remaining": 2}}

    response = requests.post(f"{emulator.url}/queue", json={"delete": [pending_id]}, timeout=DEADLINE_S)
    assert response.status_code == 200 and response.text == ""
    assert requests.get(f"{emulator.url}/queue", timeout=DEADLINE_S).json()["queue_pending"] == []
    recorder.wait_for(
        lambda f: (
            f["type"] == "status"
            and f["data"]["status"]["exec_info"]["queue_remaining"] == 1
            and "sid" not in f["data"]
            and recorder.types().count("status") > 3
        )
    )

    requests.post(f"{emulator.url}/interrupt", json={}, timeout=DEADLINE_S)
    recorder.wait_done(running_id)
    assert history(emulator, pending_id) == {}
    assert requests.get(f"{emulator.url}/queue", timeout=DEADLINE_S).json() == {
        "queue_running": [],
        "queue_pending": [],
    }


def test_queue_clear(start_emulator, connect):
    emulator = start_emulator(step_seconds=0.01)
    recorder, running_id = _slow(emulator, connect)
    for seed in (1, 2):
        submit(emulator, edit_graph(seed=seed), new_client_id())
    assert requests.post(f"{emulator.url}/queue", json={"clear": True}, timeout=DEADLINE_S).status_code == 200
    assert requests.get(f"{emulator.url}/queue", timeout=DEADLINE_S).json()["queue_pending"] == []
    requests.post(f"{emulator.url}/interrupt", json={"prompt_id": running_id}, timeout=DEADLINE_S)
    recorder.wait_done(running_id)


def test_numbers_grow_on_every_post_and_client_ids_are_kept(emulator):
    upload(emulator, "src.png", png_bytes())
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "n"}},
    }
    chosen = str(uuid.uuid4())
    first = submit(emulator, graph, prompt_id=chosen).json()
    rejected = submit(emulator, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    third = submit(emulator, graph).json()
    assert first["prompt_id"] == chosen and first["number"] == 0
    assert rejected.status_code == 400
    assert third["number"] == 2
    assert wait_history(emulator, chosen)["prompt"][:2] == [0, chosen]


def test_history_listing(emulator, basic_trace):
    upload(emulator, "src.png", png_bytes())
    ids = []
    for prefix in ("a", "b", "c"):
        graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
        }
        ids.append(submit(emulator, graph).json()["prompt_id"])
    for prompt_id in ids:
        wait_history(emulator, prompt_id)
    everything = requests.get(f"{emulator.url}/history", timeout=DEADLINE_S).json()
    assert list(everything) == ids
    last = requests.get(f"{emulator.url}/history", params={"max_items": 1}, timeout=DEADLINE_S).json()
    assert list(last) == ids[-1:]
    assert len(basic_trace["GET /history?max_items=1 keys"]["keys"]) == len(last)
    requests.post(f"{emulator.url}/history", json={"delete": [ids[0]]}, timeout=DEADLINE_S)
    assert history(emulator, ids[0]) == {}


def test_class_the_emulator_cannot_run_fails_with_a_named_error(emulator, connect):
    upload(emulator, "src.png", png_bytes())
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
        "2": {
            "class_type": "ImageSharpen",
            "inputs": {"image": ["1", 0], "sharpen_radius": 1, "sigma": 1.0, "alpha": 1.0},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}},
    }
    prompt_id = submit(emulator, graph, client_id).json()["prompt_id"]
    recorder.wait_done(prompt_id)
    error = recorder.wait_for(lambda f: f["type"] == "execution_error")["data"]
    assert error["node_id"] == "2" and error["node_type"] == "ImageSharpen"
    assert error["exception_type"].endswith("NodeNotEmulated")
    assert "ImageSharpen" in error["exception_message"] and "cannot execute" in error["exception_message"]
    assert error["executed"] == ["1"]


def test_hook_failure_is_an_execution_error(start_emulator, connect):
    class FailAtSampler(ExecutionHooks):
        def before_node(self, prompt_id: str, node_id: str, class_type: str) -> None:
            if class_type == "KSampler":
                raise RuntimeError("injected fault")

    emulator = start_emulator(hooks=FailAtSampler())
    upload(emulator, "ref.png", png_bytes((120, 80)))
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    prompt_id = submit(emulator, edit_graph(), client_id).json()["prompt_id"]
    recorder.wait_done(prompt_id)
    error = recorder.wait_for(lambda f: f["type"] == "execution_error")["data"]
    assert (error["node_type"], error["exception_type"], error["exception_message"]) == (
        "KSampler",
        "RuntimeError",
        "injected fault\n",
    )


def test_stats_report_busy_share(start_emulator, connect):
    emulator = start_emulator(step_seconds=0.005)
    upload(emulator, "ref.png", png_bytes((120, 80)))
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    prompt_id = submit(emulator, edit_graph(steps=20), client_id).json()["prompt_id"]
    recorder.wait_done(prompt_id)
    stats = requests.get(f"{emulator.url}/emulator/stats", timeout=DEADLINE_S).json()
    assert stats["emulator"] is True
    assert stats["prompts_submitted"] == 1 and stats["prompts_succeeded"] == 1
    assert stats["nodes_executed"] == 14 and stats["progress_steps"] == 20
    assert 0.1 <= stats["busy_s"] <= stats["uptime_s"]
    assert 0 < stats["busy_fraction"] <= 1
    assert stats["queue_pending"] == 0 and stats["websockets_connected"] == 1


def test_dropped_websockets_and_a_lost_queue(start_emulator, connect):
    emulator = start_emulator(step_seconds=0.01)
    recorder, running_id = _slow(emulator, connect)
    pending_id = submit(emulator, edit_graph(seed=5), new_client_id()).json()["prompt_id"]

    emulator.drop_websockets()
    recorder.wait_closed()
    assert requests.get(f"{emulator.url}/emulator/stats", timeout=DEADLINE_S).json()["websockets_connected"] == 0

    # What a restart loses: pending work and history (the running prompt is left to finish).
    emulator.emulator.queue.forget_everything()
    assert requests.get(f"{emulator.url}/queue", timeout=DEADLINE_S).json()["queue_pending"] == []
    requests.post(f"{emulator.url}/interrupt", json={}, timeout=DEADLINE_S)
    wait_history(emulator, running_id)
    assert history(emulator, pending_id) == {}
