"""Fixtures: an emulator on a real loopback port, a websocket recorder, and trace/image helpers."""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import websocket
from PIL import Image

from gpuorch_dev.emulator import EmulatorConfig, ExecutionHooks, RunningEmulator, start_in_thread
from tests.paths import TRACES

MODEL_FILES = {
    "diffusion_models": ("qwen_image_edit_2509_fp8_e4m3fn.safetensors",),
    "text_encoders": ("qwen_2.5_vl_7b_fp8_scaled.safetensors",),
    "vae": ("qwen_image_vae.safetensors",),
    "loras": ("Qwen-Image-Lightning-4steps.safetensors", "camera-angles.safetensors"),
}
DEADLINE_S = 10.0


def load_trace(name: str) -> dict[str, Any]:
    return json.loads((TRACES / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def basic_trace() -> dict[str, Any]:
    return load_trace("http-and-ws-basic")


@pytest.fixture(scope="session")
def progress_trace() -> dict[str, Any]:
    return load_trace("ws-progress-reconnect")


@pytest.fixture
def start_emulator(tmp_path) -> Iterator[Callable[..., RunningEmulator]]:
    """Start emulators with tiny step times; every one started is stopped after the test."""
    started: list[RunningEmulator] = []

    def start(hooks: ExecutionHooks | None = None, **overrides: Any) -> RunningEmulator:
        settings: dict[str, Any] = {
            "data_dir": tmp_path / f"comfy{len(started)}",
            "port": 0,
            "step_seconds": 0.001,
            "model_files": MODEL_FILES,
        }
        settings.update(overrides)
        running = start_in_thread(EmulatorConfig(**settings), hooks)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def emulator(start_emulator) -> RunningEmulator:
    return start_emulator()


class FrameRecorder:
    """A websocket client that records every text frame on a thread, with waits bounded by a deadline."""

    def __init__(self, url: str):
        self.frames: list[dict[str, Any]] = []
        # How the server ended the connection: the close frame's status code, or None when it cut the
        # connection without one (or has not ended it yet).
        self.close_code: int | None = None
        self._changed = threading.Condition()
        self.socket = websocket.create_connection(url, timeout=DEADLINE_S)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                opcode, data = self.socket.recv_data()
            except (websocket.WebSocketException, OSError):
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                break
            if opcode == websocket.ABNF.OPCODE_TEXT:
                with self._changed:
                    self.frames.append(json.loads(data))
                    self._changed.notify_all()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE_S) -> dict[str, Any]:
        """The first recorded frame matching ``predicate``, waiting up to ``timeout`` for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for frame in self.frames:
                    if predicate(frame):
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no matching frame within {timeout}s; got {[f['type'] for f in self.frames]}")
                self._changed.wait(remaining)

    def wait_done(self, prompt_id: str) -> dict[str, Any]:
        """Wait for the final ``executing {"node": null}`` frame of ``prompt_id``."""
        return self.wait_for(
            lambda f: (
                f["type"] == "executing" and f["data"].get("node") is None and f["data"].get("prompt_id") == prompt_id
            )
        )

    def types(self) -> list[str]:
        with self._changed:
            return [frame["type"] for frame in self.frames]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self.frames)

    def send(self, payload: dict[str, Any]) -> None:
        self.socket.send(json.dumps(payload))

    def wait_closed(self, timeout: float = DEADLINE_S) -> None:
        """Wait until the server has closed the socket."""
        self._reader.join(timeout)
        assert not self._reader.is_alive(), f"socket still open after {timeout}s"

    def close(self) -> None:
        self.socket.close()
        self._reader.join(DEADLINE_S)


@pytest.fixture
def connect() -> Iterator[Callable[[RunningEmulator, str | None], FrameRecorder]]:
    """Open recorded websockets (closed after the test); each waits for its greeting frame first."""
    opened: list[FrameRecorder] = []

    def open_socket(running: RunningEmulator, client_id: str | None = None) -> FrameRecorder:
        url = running.ws_url(client_id) if client_id else f"ws://{running.host}:{running.port}/ws"
        recorder = FrameRecorder(url)
        recorder.wait_for(lambda f: f["type"] == "status" and "sid" in f["data"])
        opened.append(recorder)
        return recorder

    yield open_socket
    for recorder in opened:
        recorder.close()


def png_bytes(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A small deterministic RGB gradient as PNG bytes."""
    image = Image.new("RGB", size)
    image.putdata(
        [
            ((x * 4 + seed) % 256, (y * 5 + seed) % 256, (x + y + 30 + seed) % 256)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(running: RunningEmulator, name: str, data: bytes, **fields: str) -> requests.Response:
    return requests.post(
        f"{running.url}/upload/image", files={"image": (name, data, "image/png")}, data=fields, timeout=DEADLINE_S
    )


def submit(
    running: RunningEmulator, graph: dict[str, Any], client_id: str | None = None, **extra: Any
) -> requests.Response:
    body: dict[str, Any] = {"prompt": graph, **extra}
    if client_id is not None:
        body["client_id"] = client_id
    return requests.post(f"{running.url}/prompt", json=body, timeout=DEADLINE_S)


def history(running: RunningEmulator, prompt_id: str) -> dict[str, Any]:
    return requests.get(f"{running.url}/history/{prompt_id}", timeout=DEADLINE_S).json()


def wait_history(running: RunningEmulator, prompt_id: str, timeout: float = DEADLINE_S) -> dict[str, Any]:
    """Poll /history/{id} until the entry appears (for prompts that get no websocket frames)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = history(running, prompt_id)
        if entry:
            return entry[prompt_id]
        time.sleep(0.01)
    raise AssertionError(f"prompt {prompt_id} not in history within {timeout}s")


def arm(running: RunningEmulator, **fault: Any) -> dict[str, Any]:
    """Arm one fault through ``POST /emulator/faults``; returns its description."""
    response = requests.post(f"{running.url}/emulator/faults", json=fault, timeout=DEADLINE_S)
    assert response.status_code == 201, response.text
    return response.json()["fault"]


def faults(running: RunningEmulator) -> dict[str, Any]:
    return requests.get(f"{running.url}/emulator/faults", timeout=DEADLINE_S).json()


def stats(running: RunningEmulator) -> dict[str, Any]:
    return requests.get(f"{running.url}/emulator/stats", timeout=DEADLINE_S).json()


def eventually(probe: Callable[[], Any], timeout: float = DEADLINE_S, interval: float = 0.01) -> Any:
    """Call ``probe`` until it returns something truthy, and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{getattr(probe, '__name__', 'condition')} not met within {timeout}s")
        time.sleep(interval)


def new_client_id() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def shape(value: Any) -> Any:
    """The type skeleton of a JSON value: dict keys and value types; a list becomes its distinct element shapes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        distinct: list[Any] = []
        for item in map(shape, value):
            if item not in distinct:
                distinct.append(item)
        return distinct
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__
