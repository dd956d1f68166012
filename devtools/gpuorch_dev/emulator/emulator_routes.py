"""The emulator's own routes under ``/emulator/`` (statistics, fault injection) and the outage middleware.

None of these exist on a real ComfyUI server; they let tests break and inspect a running emulator::

    POST   /emulator/faults        arm one fault (body: see ``faults.py``); 201 {"fault": {...}}, 400 naming the field
    GET    /emulator/faults        {"armed", "outages", "holding", "fired"}
    DELETE /emulator/faults        disarm all, end outages, release held prompts; 200 {"cleared": N}
    DELETE /emulator/faults/{id}   disarm one; 200, or 404 when it is not armed
    GET    /emulator/stats         counters, including per prompt id and faults fired

Outages never refuse these routes, so a test can always heal what it broke.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gpuorch_dev.emulator.faults import FaultSpecError, parse_fault
from gpuorch_dev.emulator.instance import EMULATOR_KEY, Emulator

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNAVAILABLE_TEXT = "503 Service Unavailable\n\nThe ComfyUI emulator is refusing requests (an injected fault)"


@web.middleware
async def refuse_during_outages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 503, or close the connection unanswered, while an injected outage covers the request."""
    outage = request.app[EMULATOR_KEY].faults.refusal(request.path)
    if outage is None:
        return await handler(request)
    if outage.refuse_with == "close" and request.transport is not None:
        # Cut the connection: the client sees it closed without a response, as during a restart. The
        # response below is never written.
        request.transport.abort()
    return web.Response(status=503, text=UNAVAILABLE_TEXT)


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


async def post_fault(request: web.Request) -> web.Response:
    emulator = _emulator(request)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    try:
        spec = parse_fault(body, known_classes=emulator.base_catalogue.keys())
    except FaultSpecError as exc:
        logger.warning("fault rejected: %s", exc)
        return web.json_response(
            {"error": {"type": "invalid_fault", "field": exc.field, "message": exc.message}}, status=400
        )
    described, settled = emulator.faults.arm(spec)
    if settled is not None:
        # A fault fired now answers once its sockets are closed, so the caller can rely on the effect.
        described["websockets_closed"] = await asyncio.wrap_future(settled)
    return web.json_response({"fault": described}, status=201)


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_emulator(request).faults.snapshot())


async def delete_faults(request: web.Request) -> web.Response:
    return web.json_response({"cleared": _emulator(request).faults.clear()})


async def delete_fault(request: web.Request) -> web.Response:
    fault_id = request.match_info["fault_id"]
    if not _emulator(request).faults.disarm(fault_id):
        return web.json_response(
            {"error": {"type": "unknown_fault", "field": None, "message": f"no fault {fault_id} is armed"}},
            status=404,
        )
    return web.json_response({"cleared": 1})


def emulator_stats_document(emulator: Emulator) -> dict:
    """Every counter of the emulator, as ``GET /emulator/stats`` answers them."""
    running, pending = emulator.queue.snapshot()
    return {
        **emulator.meter.snapshot(),
        **emulator.counts,
        **emulator.faults.counters(),
        "restarts": emulator.restarts,
        "queue_running": len(running),
        "queue_pending": len(pending),
        "history_entries": emulator.queue.history_size(),
        "cached_nodes": len(emulator.executor.cache),
        "websockets_connected": emulator.hub.connected,
        "websocket_connections_total": emulator.hub.connections_total,
        "emulator": True,
    }


async def emulator_stats(request: web.Request) -> web.Response:
    return web.json_response(emulator_stats_document(_emulator(request)))


EMULATOR_ROUTES = (
    ("GET", "/emulator/stats", emulator_stats),
    ("POST", "/emulator/faults", post_fault),
    ("GET", "/emulator/faults", get_faults),
    ("DELETE", "/emulator/faults", delete_faults),
    ("DELETE", "/emulator/faults/{fault_id}", delete_fault),
)
