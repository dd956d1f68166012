"""The emulator's aiohttp application: ComfyUI's routes (also under ``/api``), bound to one :class:`Emulator`.

The emulator's own ``/emulator/...`` routes (statistics, fault injection) live in ``emulator_routes.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from gpuorch import __version__
from gpuorch_dev.emulator.config import EMULATOR_NAME, EmulatorConfig
from gpuorch_dev.emulator.emulator_routes import EMULATOR_ROUTES, refuse_during_outages
from gpuorch_dev.emulator.executor import ExecutionHooks
from gpuorch_dev.emulator.instance import EMULATOR_KEY, Emulator
from gpuorch_dev.emulator.prompt_queue import QueueItem
from gpuorch_dev.emulator.storage import FOLDER_TYPES, PathOutsideFolder, split_annotation
from gpuorch.comfyui.validation import check_prompt

logger = logging.getLogger(__name__)

COMFYUI_VERSION = "0.8.0"
SERVER_HEADER = f"{EMULATOR_NAME}/{__version__} (emulates ComfyUI {COMFYUI_VERSION})"
# Extra data keys ComfyUI strips before a prompt is queued, so they never reach /queue or /history.
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
# aiohttp's own body for an unhandled exception, which is what ComfyUI answers for a body it cannot parse.
INTERNAL_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"


def create_app(config: EmulatorConfig, hooks: ExecutionHooks | None = None) -> web.Application:
    """The aiohttp application of one emulator; its executor starts and stops with the app."""
    app = web.Application(client_max_size=config.max_upload_bytes, middlewares=[refuse_during_outages])
    app[EMULATOR_KEY] = Emulator(config, hooks)
    app.cleanup_ctx.append(_lifecycle)
    app.on_response_prepare.append(_server_header)
    for prefix in ("", "/api"):
        for method, path, handler in (*_ROUTES, *EMULATOR_ROUTES):
            app.router.add_route(method, prefix + path, handler)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    emulator = app[EMULATOR_KEY]
    await emulator.start()
    yield
    await emulator.stop()


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


def _internal_error() -> web.Response:
    return web.Response(status=500, text=INTERNAL_ERROR_TEXT)


async def _json_body(request: web.Request) -> Any:
    """The JSON body, or None when it is not JSON (ComfyUI then fails with a 500)."""
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


async def system_stats(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    ram_total, ram_free = _memory()
    vram = emulator.config.vram_total_bytes
    return web.json_response(
        {
            "system": {
                "os": sys.platform,
                "ram_total": ram_total,
                "ram_free": ram_free,
                "comfyui_version": COMFYUI_VERSION,
                "required_frontend_version": "none (emulator)",
                "installed_templates_version": "none (emulator)",
                "required_templates_version": "none (emulator)",
                "python_version": sys.version,
                "pytorch_version": "none (emulator)",
                "embedded_python": False,
                "argv": [EMULATOR_NAME, "--listen", emulator.config.host, "--port", str(emulator.config.port)],
                "emulator": True,
            },
            "devices": [
                {
                    "name": f"{EMULATOR_NAME} (no GPU)",
                    "type": "cpu",
                    "index": None,
                    "vram_total": vram,
                    "vram_free": vram,
                    "torch_vram_total": vram,
                    "torch_vram_free": vram,
                }
            ],
            "emulator": True,
        }
    )


async def features(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).features())


async def object_info(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_emulator(request).catalogue))


async def object_info_class(request: web.Request) -> web.Response:
    catalogue = await asyncio.to_thread(_emulator(request).catalogue)
    class_type = request.match_info["node_class"]
    return web.json_response({class_type: catalogue[class_type]} if class_type in catalogue else {})


async def upload_image(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    form = await request.post()
    image = form.get("image")
    if not isinstance(image, web.FileField) or not image.filename:
        return web.Response(status=400)
    kind = str(form.get("type") or "input")
    if kind not in FOLDER_TYPES:
        return _internal_error()
    subfolder = str(form.get("subfolder", ""))
    overwrite = form.get("overwrite") in ("true", "1")
    data = image.file.read()
    try:
        name = await asyncio.to_thread(emulator.storage.store_upload, kind, subfolder, image.filename, data, overwrite)
    except PathOutsideFolder:
        return web.Response(status=400)
    emulator.counts["uploads"] += 1
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


async def view(request: web.Request) -> web.StreamResponse:
    storage = _emulator(request).storage
    query = request.rel_url.query
    if "filename" not in query:
        return web.Response(status=404)
    filename, kind = split_annotation(query["filename"])
    if not filename:
        return web.Response(status=400)
    if filename.startswith("/") or ".." in filename:
        return web.Response(status=400)
    kind = kind or query.get("type", "output")
    if kind not in FOLDER_TYPES:
        return web.Response(status=400)
    name = os.path.basename(filename)
    try:
        path = storage.inside(kind, query.get("subfolder", ""), name)
    except PathOutsideFolder:
        return web.Response(status=403)
    if not path.is_file():
        return web.Response(status=404)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if content_type in {"text/html", "application/xhtml+xml", "text/javascript", "text/css"}:
        content_type = "application/octet-stream"  # ComfyUI forces these to download, never to render
    return web.FileResponse(path, headers={"Content-Disposition": f'filename="{name}"', "Content-Type": content_type})


async def post_prompt(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        logger.warning("POST /prompt: body is not a JSON object")
        return _internal_error()
    emulator.counts["prompts_submitted"] += 1
    # The number is taken before validation, so rejected prompts use one up too.
    if "number" in body:
        number: float = float(body["number"])
    else:
        number = emulator.next_number()
        if body.get("front"):
            number = -number
    if "prompt" not in body:
        emulator.counts["prompts_rejected"] += 1
        error = {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "No prompt provided",
            "extra_info": {},
        }
        return web.json_response({"error": error, "node_errors": {}}, status=400)
    graph = body["prompt"]
    prompt_id = str(body.get("prompt_id") or uuid.uuid4())
    catalogue = await asyncio.to_thread(emulator.catalogue)
    check = check_prompt(
        graph,
        catalogue,
        file_exists=emulator.storage.exists_annotated,
        partial_execution_targets=body.get("partial_execution_targets"),
    )
    if not check.ok:
        emulator.counts["prompts_rejected"] += 1
        logger.info("prompt %s rejected: %s", prompt_id, check.error["type"])
        return web.json_response({"error": check.error, "node_errors": check.node_errors}, status=400)
    extra_data = dict(body.get("extra_data") or {})
    if "client_id" in body:
        extra_data["client_id"] = body["client_id"]
    for key in SENSITIVE_EXTRA_DATA_KEYS:
        extra_data.pop(key, None)
    extra_data["create_time"] = _now_ms()
    emulator.queue.put(QueueItem(number, prompt_id, graph, extra_data, check.outputs))
    emulator.meter.queued(prompt_id)
    logger.info("prompt %s queued as number %s", prompt_id, number)
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": check.node_errors})


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).queue_info())


async def get_queue(request: web.Request) -> web.Response:
    running, pending = _emulator(request).queue.snapshot()
    return web.json_response({"queue_running": running, "queue_pending": pending})


async def _clear_or_delete(request: web.Request, clear, delete) -> web.Response:
    """POST /queue and POST /history: `{"clear": true}` and/or `{"delete": [ids]}`, 200 with an empty body."""
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _internal_error()
    if body.get("clear"):
        clear()
    if "delete" in body:
        delete(body["delete"])
    return web.Response(status=200)


async def post_queue(request: web.Request) -> web.Response:
    queue = _emulator(request).queue
    return await _clear_or_delete(request, queue.clear_pending, queue.delete_pending)


async def get_history(request: web.Request) -> web.Response:
    query = request.rel_url.query
    try:
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query.get("offset", -1))
    except ValueError:
        return _internal_error()
    return web.json_response(_emulator(request).queue.history(max_items=max_items, offset=offset))


async def get_history_item(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).queue.history(request.match_info["prompt_id"]))


async def post_history(request: web.Request) -> web.Response:
    queue = _emulator(request).queue
    return await _clear_or_delete(request, queue.clear_history, queue.delete_history)


async def interrupt(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    body = await _json_body(request)
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id and prompt_id not in emulator.queue.running_ids():
        logger.info("interrupt for prompt %s ignored: it is not running", prompt_id)
    else:
        logger.info("interrupt requested (%s)", prompt_id or "global")
        emulator.executor.interrupt()
    return web.Response(status=200)


async def free(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _internal_error()
    if body.get("free_memory") or body.get("unload_models"):
        _emulator(request).executor.free_memory()
    return web.Response(status=200)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    emulator = _emulator(request)
    socket = web.WebSocketResponse()
    await socket.prepare(request)
    sid = request.rel_url.query.get("clientId") or uuid.uuid4().hex
    emulator.hub.register(sid, socket, request.transport)
    try:
        await emulator.hub.send_now(socket, "status", {"status": emulator.queue_info(), "sid": sid})
        node_id = emulator.executor.current_node(sid)
        if node_id is not None:
            await emulator.hub.send_now(socket, "executing", {"node": node_id})
        first_message = True
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                try:
                    data = json.loads(message.data)
                except json.JSONDecodeError:
                    logger.warning("websocket %s sent a frame that is not JSON", sid)
                    continue
                if first_message and isinstance(data, dict) and data.get("type") == "feature_flags":
                    await emulator.hub.send_now(socket, "feature_flags", emulator.features())
                first_message = False
            elif message.type == WSMsgType.ERROR:
                logger.warning("websocket %s closed with exception %s", sid, socket.exception())
    finally:
        emulator.hub.unregister(sid, socket)
    return socket


_ROUTES = (
    ("GET", "/system_stats", system_stats),
    ("GET", "/features", features),
    ("GET", "/object_info", object_info),
    ("GET", "/object_info/{node_class}", object_info_class),
    ("POST", "/upload/image", upload_image),
    ("GET", "/view", view),
    ("POST", "/prompt", post_prompt),
    ("GET", "/prompt", get_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("POST", "/history", post_history),
    ("POST", "/interrupt", interrupt),
    ("POST", "/free", free),
    ("GET", "/ws", websocket),
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _memory() -> tuple[int, int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        return 0, 0
