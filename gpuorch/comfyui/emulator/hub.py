"""Websocket fan-out: one ordered message queue, drained on the event loop, as in ComfyUI's server.

Any thread may call :meth:`WebSocketHub.send`; frames keep the order they were sent in. A frame with
``sid=None`` goes to every socket, otherwise only to the socket registered under that client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

_STOP = object()


class WebSocketHub:
    def __init__(self) -> None:
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self.connections_total = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._publisher = asyncio.create_task(self._publish(), name="comfyui-emulator-ws-publisher")

    async def stop(self) -> None:
        """Flush what is queued, stop publishing and close every socket."""
        if self._queue is not None and self._publisher is not None:
            self._queue.put_nowait(_STOP)
            await self._publisher
        await self.close_all()

    async def close_all(self) -> None:
        """Close every socket now (clients see a dropped connection and must reconnect)."""
        for sid, socket in list(self._sockets.items()):
            with contextlib.suppress(Exception):
                await socket.close()
            self._sockets.pop(sid, None)

    @property
    def connected(self) -> int:
        return len(self._sockets)

    def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        """Queue ``{"type": event, "data": data}`` for ``sid`` (None: everyone); safe from any thread."""
        if self._loop is None or self._queue is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (event, data, sid))
        except RuntimeError:
            logger.debug("event loop closed; dropping %s frame", event)

    def register(self, sid: str, socket: web.WebSocketResponse) -> None:
        # A reconnect under the same client id replaces the old socket, which gets no more frames.
        self._sockets[sid] = socket
        self.connections_total += 1

    def unregister(self, sid: str, socket: web.WebSocketResponse) -> None:
        # Only forget the socket if it is still the registered one: a late close of a replaced socket
        # must not cut off its successor.
        if self._sockets.get(sid) is socket:
            del self._sockets[sid]

    async def send_now(self, socket: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        """Send directly, bypassing the queue: the greeting frames of a new connection."""
        await socket.send_str(json.dumps({"type": event, "data": data}))

    async def _publish(self) -> None:
        assert self._queue is not None
        while True:
            message = await self._queue.get()
            if message is _STOP:
                return
            event, data, sid = message
            text = json.dumps({"type": event, "data": data})
            targets = (
                list(self._sockets.values()) if sid is None else [self._sockets[sid]] if sid in self._sockets else []
            )
            for socket in targets:
                try:
                    await socket.send_str(text)
                except (ConnectionError, RuntimeError) as exc:
                    logger.debug("dropping %s frame for a closing socket: %s", event, exc)
