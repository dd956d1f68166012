"""Faults armed over HTTP that fire inside a running prompt: hang, execution error, restart, socket drop."""

from __future__ import annotations

import uuid

import pytest
import requests

from .conftest import (
    DEADLINE_S,
    arm,
    eventually,
    faults,
    history,
    new_client_id,
    png_bytes,
    stats,
    submit,
    upload,
    wait_history,
)
from .test_progress import edit_graph


def _submit(emulator, connect, steps: int = 4, seed: int = 7, prompt_id: str | None = None):
    """Submit an edit graph for a fresh client; returns (recorder, prompt_id)."""
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    extra = {"prompt_id": prompt_id} if prompt_id else {}
    response = submit(emulator, edit_graph(steps=steps, seed=seed), client_id, **extra)
    assert response.status_code == 200, response.text
    return recorder, response.json()["prompt_id"]


def _steps_seen(recorder, prompt_id: str) -> list[int]:
    frames = recorder.snapshot()
    return [f["data"]["value"] for f in frames if f["type"] == "progress" and f["data"]["prompt_id"] == prompt_id]


def _holding(emulator, prompt_id: str):
    def held():
        return next((hold for hold in faults(emulator)["holding"] if hold["prompt_id"] == prompt_id), None)

    return eventually(held)


def test_hang_at_a_step_of_one_prompt_until_interrupted(emulator, connect, basic_trace):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    target = str(uuid.uuid4())
    fault = arm(emulator, kind="hang", prompt_id=target, at_node_class="KSampler", at_step=2)

    other_recorder, other = _submit(emulator, connect, seed=1)
    other_recorder.wait_done(other)
    assert history(emulator, other)[other]["status"]["status_str"] == "success"

    recorder, prompt_id = _submit(emulator, connect, seed=2, prompt_id=target)
    hold = _holding(emulator, target)
    assert hold == {"fault_id": fault["id"], "prompt_id": target, "node_id": "12", "node_class": "KSampler", "step": 2}
    recorder.wait_for(lambda f: f["type"] == "progress" and f["data"]["value"] == 1)
    assert _steps_seen(recorder, target) == [1]
    assert history(emulator, target) == {}

    requests.post(f"{emulator.url}/interrupt", json={"prompt_id": target}, timeout=DEADLINE_S)
    recorder.wait_done(prompt_id)
    interrupted = recorder.wait_for(lambda f: f["type"] == "execution_interrupted")["data"]
    recorded = next(iter(basic_trace["GET /history/{id} (interrupted)"]["json"].values()))["status"]["messages"][-1]
    assert set(interrupted) == set(recorded[1]) and "traceback" not in interrupted
    assert (interrupted["node_id"], interrupted["node_type"]) == ("12", "KSampler")
    assert _steps_seen(recorder, target) == [1]
    entry = history(emulator, target)[target]
    assert (entry["status"]["status_str"], entry["status"]["messages"][-1][0]) == ("error", "execution_interrupted")

    counters = stats(emulator)
    assert counters["prompts"][target] == {"queued": 1, "executed": 1, "outcomes": ["interrupted"]}
    assert counters["faults_fired"]["hang"] == 1
    listed = faults(emulator)
    assert listed["holding"] == [] and listed["armed"] == []
    assert [(f["fault_id"], f["prompt_id"], f["node_id"], f["step"]) for f in listed["fired"]] == [
        (fault["id"], target, "12", 2)
    ]


def test_hang_before_a_node_is_released_by_clearing_faults(emulator, connect):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    arm(emulator, kind="hang", at_node_class="VAEDecode")
    recorder, prompt_id = _submit(emulator, connect)
    assert _holding(emulator, prompt_id)["node_id"] == "13"
    recorder.wait_for(lambda f: f["type"] == "executing" and f["data"].get("node") == "13")
    assert "executed" not in recorder.types()

    assert requests.delete(f"{emulator.url}/emulator/faults", timeout=DEADLINE_S).status_code == 200
    recorder.wait_done(prompt_id)
    assert history(emulator, prompt_id)[prompt_id]["status"]["status_str"] == "success"


def test_execution_error_at_a_node_class(emulator, connect, basic_trace):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    arm(
        emulator,
        kind="execution_error",
        at_node_class="KSampler",
        exception_type="torch.OutOfMemoryError",
        exception_message="Allocation on device",
    )
    recorder, prompt_id = _submit(emulator, connect)
    recorder.wait_done(prompt_id)
    error = recorder.wait_for(lambda f: f["type"] == "execution_error")["data"]
    recorded = next(
        m["msg"]["data"] for m in basic_trace["WS messages (runtime error)"] if m["msg"]["type"] == "execution_error"
    )
    assert set(error) == set(recorded)
    assert (error["node_id"], error["node_type"]) == ("12", "KSampler")
    assert (error["exception_type"], error["exception_message"]) == ("torch.OutOfMemoryError", "Allocation on device\n")
    assert error["traceback"] and all(isinstance(line, str) for line in error["traceback"])
    assert _steps_seen(recorder, prompt_id) == []
    entry = history(emulator, prompt_id)[prompt_id]
    assert (entry["status"]["status_str"], entry["status"]["messages"][-1][0]) == ("error", "execution_error")

    # times defaults to 1: the same graph runs cleanly the next time.
    again_recorder, again = _submit(emulator, connect)
    again_recorder.wait_done(again)
    assert history(emulator, again)[again]["status"]["status_str"] == "success"
    assert stats(emulator)["faults_fired"]["execution_error"] == 1


def test_execution_error_at_a_step_every_time_until_cleared(emulator, connect):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    arm(emulator, kind="execution_error", at_node_id="12", at_step=2, times=None)
    for seed in (1, 2):
        recorder, prompt_id = _submit(emulator, connect, seed=seed)
        recorder.wait_done(prompt_id)
        error = recorder.wait_for(lambda f: f["type"] == "execution_error")["data"]
        assert (error["node_id"], error["exception_type"]) == ("12", "RuntimeError")
        assert error["exception_message"] == "fault injected by the ComfyUI emulator\n"
        assert _steps_seen(recorder, prompt_id) == [1]
    assert faults(emulator)["armed"][0]["fired"] == 2

    requests.delete(f"{emulator.url}/emulator/faults", timeout=DEADLINE_S)
    recorder, prompt_id = _submit(emulator, connect, seed=3)
    recorder.wait_done(prompt_id)
    assert history(emulator, prompt_id)[prompt_id]["status"]["status_str"] == "success"
    assert stats(emulator)["prompts_failed"] == 2


def test_restart_mid_prompt_and_the_resubmission_runs_once(emulator, connect):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    arm(emulator, kind="restart", at_node_class="KSampler", at_step=2, for_requests=1)
    chosen = str(uuid.uuid4())
    recorder, prompt_id = _submit(emulator, connect, prompt_id=chosen)
    recorder.wait_closed()
    assert recorder.close_code is None
    eventually(lambda: stats(emulator)["prompts"][chosen]["outcomes"] == ["abandoned"])
    # Nothing of the lost run reached the client after the restart point, and it left no trace.
    assert max(_steps_seen(recorder, chosen), default=0) < 2
    assert not {"execution_interrupted", "execution_error", "execution_success"} & set(recorder.types())

    # The first request after the restart is refused (closed), as during a restart window.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{emulator.url}/history/{chosen}", timeout=DEADLINE_S)
    assert stats(emulator)["requests_refused"] == 1
    assert history(emulator, chosen) == {}
    again, resubmitted = _submit(emulator, connect, prompt_id=chosen)
    assert resubmitted == chosen
    again.wait_done(chosen)
    assert history(emulator, chosen)[chosen]["status"]["status_str"] == "success"
    assert _steps_seen(again, chosen) == [1, 2, 3, 4]
    counters = stats(emulator)
    assert counters["prompts"][chosen] == {"queued": 2, "executed": 2, "outcomes": ["abandoned", "succeeded"]}
    assert counters["faults_fired"]["restart"] == 1 and faults(emulator)["armed"] == []


def test_drop_websockets_at_a_step_leaves_the_prompt_running(emulator, connect):
    upload(emulator, "ref.png", png_bytes((120, 80)))
    fault = arm(emulator, kind="drop_websockets", at_node_class="KSampler", at_step=3)
    recorder, prompt_id = _submit(emulator, connect, steps=6)
    recorder.wait_closed()
    assert recorder.close_code == 1001
    # The client must fall back to polling /history.
    assert wait_history(emulator, prompt_id)["status"]["status_str"] == "success"
    assert max(_steps_seen(recorder, prompt_id)) < 3
    (fired,) = faults(emulator)["fired"]
    assert (fired["fault_id"], fired["kind"], fired["prompt_id"], fired["node_class"], fired["step"]) == (
        fault["id"],
        "drop_websockets",
        prompt_id,
        "KSampler",
        3,
    )
    assert stats(emulator)["prompts"][prompt_id]["outcomes"] == ["succeeded"]
