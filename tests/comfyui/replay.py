"""A ComfyUI stand-in that replays recorded answers and websocket frames (aiohttp, in a thread)."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from PIL import Image
from tests.paths import CATALOGUE, TRACES

# After these frames ComfyUI has written the history (see the contract's "Knowing when it is done").
_HISTORY_WRITTEN_AFTER = frozenset({"execution_success", "execution_error", "execution_interrupted"})


def load_trace(name: str) -> dict[str, Any]:
    return json.loads((TRACES / f"{name}.json").read_text())


def canonical(graph: Any) -> str:
    return json.dumps(graph, sort_keys=True)


def png(width: int = 4, height: int = 3) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class RecordedRun:
    """One prompt as the real server handled it: its submit answer, frames and final history."""

    prompt_id: str
    graph: dict[str, Any]
    number: int
    frames: list[dict[str, Any]]
    history_entry: dict[str, Any]


@dataclass
class Behaviour:
    """How the stand-in misbehaves in a test; the defaults are a healthy server."""

    start_on_submit: bool = False  # otherwise a run starts once its client's socket is connected
    refuse_ws: bool = False  # every websocket handshake answers 503
    drop_after: int | None = None  # abort the socket after this many frames of the run (once)
    refuse_ws_after_drop: bool = False  # reconnections after the drop answer 503
    binary_every: int | None = None  # send a preview (binary) frame before every n-th frame
    hold_before: str | None = None  # pause the run before this frame type until /interrupt
    frame_delay: float = 0.0


@dataclass
class _State:
    runs: dict[str, RecordedRun] = field(default_factory=dict)
    rejections: dict[str, dict[str, Any]] = field(default_factory=dict)
    submitted: dict[str, str | None] = field(default_factory=dict)  # prompt_id -> client_id
    history: dict[str, Any] = field(default_factory=dict)
    running: list[list[Any]] = field(default_factory=list)
    pending: list[list[Any]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    transports: dict[str, asyncio.BaseTransport] = field(default_factory=dict)
    current_node: str | None = None
    dropped: bool = False


class ReplayServer:
    """Serves the recorded shapes over HTTP and websocket on 127.0.0.1; records every request."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.state = _State()
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, JSON body or None)
        self.ws_connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._socket_events: dict[str, asyncio.Event] = {}
        self._interrupted = asyncio.Event()

    # ---- set-up from the test thread ----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_run(self, run: RecordedRun) -> None:
        self.state.runs[run.prompt_id] = run
        for refs in run.history_entry.get("outputs", {}).values():
            for items in refs.values():
                for item in items:
                    key = (item["filename"], item.get("subfolder", ""), item.get("type", "output"))
                    self.state.files[key] = png()

    def add_rejection(self, graph: Mapping[str, Any], answer: dict[str, Any]) -> None:
        self.state.rejections[canonical(graph)] = answer

    def set_queue(self, body: Mapping[str, Any]) -> None:
        self.state.running = copy.deepcopy(list(body["queue_running"]))
        self.state.pending = copy.deepcopy(list(body["queue_pending"]))

    def set_history(self, prompt_id: str, entry: dict[str, Any]) -> None:
        self.state.history[prompt_id] = entry

    def paths(self, method: str | None = None) -> list[str]:
        return [path for m, path, _ in list(self.requests) if method in (None, m)]

    def start(self) -> ReplayServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ---- server ---------------------------------------------------------------------------

    async def _start(self) -> None:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        routes = [
            web.get("/system_stats", self._system_stats),
            web.get("/object_info", self._object_info),
            web.post("/upload/image", self._upload),
            web.post("/prompt", self._submit),
            web.get("/history/{prompt_id}", self._history),
            web.get("/queue", self._queue),
            web.post("/queue", self._queue_edit),
            web.post("/interrupt", self._interrupt),
            web.get("/view", self._view),
            web.get("/ws", self._ws),
        ]
        for route in routes:  # every route is also served under /api, as ComfyUI does
            app.router.add_route(route.method, route.path, route.handler)
            app.router.add_route(route.method, "/api" + route.path, route.handler)
        app.middlewares.append(self._record)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for ws in list(self.state.sockets.values()):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = None
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = "<not json>"
        self.requests.append((request.method, request.path, body))
        return await handler(request)

    async def _system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(load_trace("http-and-ws-basic")["GET /system_stats"]["json"])

    async def _object_info(self, request: web.Request) -> web.Response:
        return web.Response(body=CATALOGUE.read_bytes(), content_type="application/json")

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form.get("image")
        if not isinstance(image, web.FileField):
            return web.Response(status=400)  # recorded: 400 with an empty body
        data = image.file.read()
        name = image.filename
        overwrite = form.get("overwrite") == "true"
        stem, dot, ext = name.rpartition(".")
        counter = 1
        while not overwrite and name in self.state.uploads and self.state.uploads[name] != data:
            name = f"{stem} ({counter}){dot}{ext}"
            counter += 1
        self.state.uploads[name] = data
        return web.json_response({"name": name, "subfolder": "", "type": "input"})

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        if "prompt" not in body:
            answer = load_trace("http-and-ws-basic")["POST /prompt invalid: no prompt key"]
            return web.json_response(answer["json"], status=answer["status"])
        rejection = self.state.rejections.get(canonical(body["prompt"]))
        if rejection is not None:
            return web.json_response(rejection["json"], status=rejection["status"])
        run = self.state.runs.get(body.get("prompt_id"))
        if run is None:
            return web.Response(status=500, text="no recording for this prompt")
        client_id = body.get("client_id")
        self.state.submitted[run.prompt_id] = client_id
        self.state.pending.append([run.number, run.prompt_id, run.graph, {"client_id": client_id}, []])
        self._spawn(self._play(run, client_id))
        return web.json_response({"prompt_id": run.prompt_id, "number": run.number, "node_errors": {}})

    async def _history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.state.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def _queue(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": self.state.running, "queue_pending": self.state.pending})

    async def _queue_edit(self, request: web.Request) -> web.Response:
        body = await request.json()
        doomed = set(body.get("delete", ()))
        self.state.pending = [item for item in self.state.pending if item[1] not in doomed]
        return web.Response(status=200)

    async def _interrupt(self, request: web.Request) -> web.Response:
        self._interrupted.set()
        return web.Response(status=200)

    async def _view(self, request: web.Request) -> web.Response:
        key = (request.query.get("filename", ""), request.query.get("subfolder", ""),
               request.query.get("type", "output"))
        data = self.state.files.get(key)
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/png")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        client_id = request.query.get("clientId", "")
        self.ws_connections += 1
        if self.behaviour.refuse_ws or (self.state.dropped and self.behaviour.refuse_ws_after_drop):
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.state.sockets[client_id] = ws
        if request.transport is not None:
            self.state.transports[client_id] = request.transport
        await ws.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": len(
            self.state.running) + len(self.state.pending)}}, "sid": client_id}})
        if self.state.dropped and self.state.current_node is not None:
            # Recorded on reconnect: the node running now, without a prompt_id.
            await ws.send_json({"type": "executing", "data": {"node": self.state.current_node}})
        self._socket_event(client_id).set()
        async for message in ws:
            if message.type == WSMsgType.ERROR:
                break
        if self.state.sockets.get(client_id) is ws:
            del self.state.sockets[client_id]
        return ws

    # ---- playback -------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _socket_event(self, client_id: str) -> asyncio.Event:
        return self._socket_events.setdefault(client_id, asyncio.Event())

    async def _play(self, run: RecordedRun, client_id: str | None) -> None:
        behaviour = self.behaviour
        if client_id and not behaviour.start_on_submit and not behaviour.refuse_ws:
            await self._socket_event(client_id).wait()
        item = next(i for i in self.state.pending if i[1] == run.prompt_id)
        self.state.pending.remove(item)
        self.state.running.append(item)
        for index, frame in enumerate(run.frames):
            if frame["type"] == behaviour.hold_before:
                await self._interrupted.wait()
            if behaviour.binary_every and index % behaviour.binary_every == 0:
                await self._send(client_id, struct.pack(">I", 1) + png())
            await self._send(client_id, frame)
            if frame["type"] == "executing":
                self.state.current_node = frame["data"].get("node")
            if frame["type"] in _HISTORY_WRITTEN_AFTER:
                self._finish(run, item)
            if behaviour.drop_after is not None and index + 1 == behaviour.drop_after:
                await self._drop(client_id)
            await asyncio.sleep(behaviour.frame_delay)
        self._finish(run, item)

    def _finish(self, run: RecordedRun, item: list[Any]) -> None:
        self.state.history.setdefault(run.prompt_id, run.history_entry)
        if item in self.state.running:
            self.state.running.remove(item)

    async def _send(self, client_id: str | None, frame: dict[str, Any] | bytes) -> None:
        ws = self.state.sockets.get(client_id or "")
        if ws is None or ws.closed:
            return  # like ComfyUI: frames for a client without a socket are lost
        try:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(json.dumps(frame))
        except ConnectionError:
            pass

    async def _drop(self, client_id: str | None) -> None:
        self.state.dropped = True
        ws = self.state.sockets.pop(client_id or "", None)
        self._socket_event(client_id or "").clear()
        transport = self.state.transports.pop(client_id or "", None)
        if ws is not None and transport is not None:
            transport.abort()  # no close frame: the connection just dies, as when ComfyUI crashes
        if not self.behaviour.refuse_ws_after_drop:
            # Hold the run until the client is back, so frames after the drop reach the new socket.
            await self._socket_event(client_id or "").wait()


def recorded_runs() -> dict[str, RecordedRun]:
    """Every complete run in the traces, keyed by a short name."""
    basic = load_trace("http-and-ws-basic")
    slow = load_trace("ws-progress-reconnect")

    def frames(recording: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages = [f["msg"] if "msg" in f else f for f in recording if f.get("kind", "text") == "text"]
        # The greeting ``status`` with the socket's sid is sent by the server on connect.
        return [m for m in messages if not (m["type"] == "status" and "sid" in m["data"])]

    def from_history(body: dict[str, Any], recording: list[dict[str, Any]]) -> RecordedRun:
        (prompt_id, entry), = body.items()
        number, _, graph = entry["prompt"][:3]
        return RecordedRun(prompt_id, graph, number, frames(recording), entry)

    upscale_id = slow["POST /prompt (upscale-model graph)"]["json"]["prompt_id"]
    # The upscale run's graph was not recorded; this one matches its frames (node 4 ticks 20 times).
    upscale_graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "probe_src.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "tiny.safetensors"}},
        "4": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["3", 0], "image": ["2", 0]}},
        "5": {"class_type": "ImageScaleBy",
              "inputs": {"image": ["4", 0], "upscale_method": "nearest-exact", "scale_by": 0.5}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }
    upscale_entry = {
        "prompt": [13, upscale_id, upscale_graph, {}, ["6"]],
        "outputs": slow["history outputs (PreviewImage -> temp)"],
        "status": {"status_str": slow["history status"], "completed": True, "messages": []},
        "meta": {},
    }
    return {
        "valid": from_history(basic["GET /history/{id} (valid run)"]["json"], basic["WS messages (valid run)"]),
        "cached": from_history(basic["GET /history/{id} (cached rerun)"]["json"],
                               basic["WS messages (cached rerun)"]),
        "runtime_error": from_history(basic["GET /history/{id} (runtime error)"]["json"],
                                      basic["WS messages (runtime error)"]),
        "interrupted": from_history(basic["GET /history/{id} (interrupted)"]["json"],
                                    basic["WS messages (interrupted run)"]),
        "upscale": RecordedRun(upscale_id, upscale_graph, 13, frames(slow["WS messages (upscale-model run)"]),
                               upscale_entry),
    }
