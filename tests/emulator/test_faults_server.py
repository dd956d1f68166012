"""Server faults armed over HTTP (dropped websockets, restart, outage) and the /emulator/faults routes."""

from __future__ import annotations

import logging

import pytest
import requests
import websocket

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

SLOW_STEPS = 5000  # far longer than any test: such a prompt only ends when interrupted


def _running(emulator, connect, steps: int = SLOW_STEPS, **extra):
    """Submit an edit graph for a fresh client and wait until its sampler is stepping."""
    upload(emulator, "ref.png", png_bytes((120, 80)))
    client_id = new_client_id()
    recorder = connect(emulator, client_id)
    prompt_id = submit(emulator, edit_graph(steps=steps), client_id, **extra).json()["prompt_id"]
    recorder.wait_for(lambda f: f["type"] == "progress" and f["data"]["prompt_id"] == prompt_id)
    return client_id, recorder, prompt_id


def _ws_status(emulator, client_id: str) -> int | str:
    """The HTTP status a websocket handshake gets (101 when the socket opened; it is closed again), or
    "closed" when the server closed the connection without answering."""
    try:
        socket = websocket.create_connection(emulator.ws_url(client_id), timeout=DEADLINE_S)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return "closed"
    socket.close()
    return 101


def _get(emulator, path: str) -> int | str:
    """A GET's status code, or "closed" when the server closed the connection without answering."""
    try:
        return requests.get(f"{emulator.url}{path}", timeout=DEADLINE_S).status_code
    except requests.ConnectionError:
        return "closed"


def test_drop_websockets_now_while_the_prompt_runs_on(start_emulator, connect):
    emulator = start_emulator(step_seconds=0.01)
    client_id, recorder, prompt_id = _running(emulator, connect)

    fault = arm(emulator, kind="drop_websockets", for_requests=2, refuse_with="503")
    assert fault["websockets_closed"] == 1 and fault["when"] == "now" and fault["fired"] == 1
    recorder.wait_closed()
    assert recorder.close_code == 1001
    assert stats(emulator)["websockets_connected"] == 0

    # Only websocket handshakes are refused, and only the next two.
    assert _get(emulator, "/queue") == 200
    assert [_ws_status(emulator, client_id), _ws_status(emulator, client_id)] == [503, 503]
    reconnected = connect(emulator, client_id)
    reconnected.wait_for(lambda f: f["type"] == "progress" and f["data"]["prompt_id"] == prompt_id)

    requests.post(f"{emulator.url}/interrupt", json={}, timeout=DEADLINE_S)
    reconnected.wait_done(prompt_id)
    counters = stats(emulator)
    assert counters["prompts"][prompt_id] == {"queued": 1, "executed": 1, "outcomes": ["interrupted"]}
    assert counters["faults_fired"]["drop_websockets"] == 1 and counters["requests_refused"] == 2
    assert faults(emulator)["outages"] == []


def test_drop_websockets_abruptly(start_emulator, connect):
    emulator = start_emulator(step_seconds=0.01)
    _, recorder, prompt_id = _running(emulator, connect, steps=100)
    bystander = connect(emulator)

    assert arm(emulator, kind="drop_websockets", abrupt=True)["websockets_closed"] == 2
    recorder.wait_closed()
    bystander.wait_closed()
    assert recorder.close_code is None and bystander.close_code is None  # cut, no close frame
    assert wait_history(emulator, prompt_id)["status"]["status_str"] == "success"


def test_restart_now_loses_queue_history_and_the_running_prompt(start_emulator, connect):
    emulator = start_emulator(step_seconds=0.01)
    upload(emulator, "src.png", png_bytes())
    copy = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "copy"}},
    }
    finished = submit(emulator, copy).json()["prompt_id"]
    wait_history(emulator, finished)
    client_id, recorder, running = _running(emulator, connect)
    pending = submit(emulator, edit_graph(seed=3), new_client_id()).json()["prompt_id"]

    fault = arm(emulator, kind="restart")
    assert fault["websockets_closed"] == 1
    recorder.wait_closed()
    assert recorder.close_code is None
    assert requests.get(f"{emulator.url}/queue", timeout=DEADLINE_S).json() == {
        "queue_running": [],
        "queue_pending": [],
    }
    assert requests.get(f"{emulator.url}/prompt", timeout=DEADLINE_S).json() == {"exec_info": {"queue_remaining": 0}}
    assert history(emulator, finished) == {} and history(emulator, running) == {}
    eventually(lambda: stats(emulator)["prompts"][running]["outcomes"] == ["abandoned"])

    # The worker resubmits the lost prompt under its own id: numbering restarted, nothing is cached.
    again = connect(emulator, client_id)
    answer = submit(emulator, edit_graph(steps=3), client_id, prompt_id=running).json()
    assert answer["number"] == 0
    again.wait_done(running)
    assert history(emulator, running)[running]["status"]["status_str"] == "success"
    assert next(f for f in again.snapshot() if f["type"] == "execution_cached")["data"]["nodes"] == []
    assert "execution_interrupted" not in again.types()
    counters = stats(emulator)
    assert counters["prompts"][running] == {"queued": 2, "executed": 2, "outcomes": ["abandoned", "succeeded"]}
    assert counters["prompts"][pending] == {"queued": 1, "executed": 0, "outcomes": []}
    assert (counters["restarts"], counters["faults_fired"]["restart"], counters["prompts_abandoned"]) == (1, 1, 1)
    assert history(emulator, pending) == {}


def test_restart_closes_connections_for_the_next_requests(emulator):
    arm(emulator, kind="restart", for_requests=2)
    assert _get(emulator, "/system_stats") == "closed"
    assert _get(emulator, "/emulator/stats") == 200  # the emulator's own routes are never refused
    assert _ws_status(emulator, new_client_id()) == "closed"
    assert _get(emulator, "/system_stats") == 200
    assert stats(emulator)["requests_refused"] == 2


def test_unavailable_answers_503_for_the_next_requests(emulator):
    arm(emulator, kind="unavailable", for_requests=3)
    assert _get(emulator, "/system_stats") == 503
    response = submit(emulator, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert response.status_code == 503 and "injected fault" in response.text
    assert _ws_status(emulator, new_client_id()) == 503
    assert _get(emulator, "/api/emulator/faults") == 200
    assert _get(emulator, "/system_stats") == 200
    counters = stats(emulator)
    assert counters["requests_refused"] == 3 and counters["faults_fired"]["unavailable"] == 1
    assert counters["prompts_submitted"] == 0


def test_unavailable_for_a_time_ends_by_itself(emulator):
    arm(emulator, kind="unavailable", for_s=0.3, refuse_with="close")
    eventually(lambda: _get(emulator, "/system_stats") == 200)
    assert faults(emulator)["outages"] == []


def test_clearing_faults_ends_an_outage(emulator):
    fault = arm(emulator, kind="unavailable", for_s=3600, for_requests=10)
    (outage,) = faults(emulator)["outages"]
    assert outage["fault_id"] == fault["id"] and outage["scope"] == "server" and outage["refuse_with"] == "503"
    assert 3590 < outage["remaining_s"] <= 3600 and outage["requests_left"] == 10
    assert _get(emulator, "/queue") == 503
    assert faults(emulator)["outages"][0]["requests_left"] == 9
    assert requests.delete(f"{emulator.url}/emulator/faults", timeout=DEADLINE_S).json() == {"cleared": 0}
    assert _get(emulator, "/queue") == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "hang", "at_step": 0}, "at_step"),
        ({"kind": "execution_error", "at_node_class": "NoSuchClass"}, "at_node_class"),
        ({"kind": "unavailable"}, "for_s"),
        ({"kind": "restart", "colour": "red"}, "colour"),
        ({"kind": "nap"}, "kind"),
    ],
)
def test_a_bad_fault_is_rejected_naming_its_field(emulator, body, field):
    response = requests.post(f"{emulator.url}/emulator/faults", json=body, timeout=DEADLINE_S)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_fault" and error["field"] == field and error["message"]
    assert faults(emulator)["armed"] == []


def test_a_body_that_is_not_json_is_rejected(emulator):
    response = requests.post(f"{emulator.url}/emulator/faults", data=b"hang", timeout=DEADLINE_S)
    assert response.status_code == 400 and response.json()["error"]["field"] is None


def test_faults_are_listed_disarmed_and_logged(emulator, caplog):
    caplog.set_level(logging.WARNING, logger="gpuorch_dev.emulator")
    hang = arm(emulator, kind="hang", at_node_class="KSampler", at_step=2, prompt_id=None, times=1)
    error = arm(emulator, kind="execution_error", at_node_id="12", times=None)
    assert hang["id"] != error["id"] and hang["fired"] == 0
    listed = faults(emulator)
    assert [fault["id"] for fault in listed["armed"]] == [hang["id"], error["id"]]
    assert listed["armed"][0] | {"armed_at": 0} == {
        "id": hang["id"],
        "kind": "hang",
        "when": "in_prompt",
        "prompt_id": None,
        "at_node_class": "KSampler",
        "at_node_id": None,
        "at_step": 2,
        "times": 1,
        "fired": 0,
        "armed_at": 0,
    }
    assert listed["holding"] == [] and listed["fired"] == []
    assert stats(emulator)["faults_armed"] == 2

    assert requests.delete(f"{emulator.url}/emulator/faults/{hang['id']}", timeout=DEADLINE_S).status_code == 200
    assert requests.delete(f"{emulator.url}/emulator/faults/{hang['id']}", timeout=DEADLINE_S).status_code == 404
    assert requests.delete(f"{emulator.url}/emulator/faults", timeout=DEADLINE_S).json() == {"cleared": 1}
    assert faults(emulator)["armed"] == []
    messages = [record.getMessage() for record in caplog.records]
    assert any(hang["id"] in message and "armed" in message for message in messages)
    assert any(hang["id"] in message and "disarmed" in message for message in messages)
