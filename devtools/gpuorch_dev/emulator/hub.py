"""Websocket fan-out: one ordered message queue, drained on the event loop, as in ComfyUI's server.

Any thread may call :meth:`WebSocketHub.send`; frames keep the order they were sent in. A frame with
``sid=None`` goes to every socket, otherwise only to the socket registered under that client id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

_STOP = object()


class WebSocketHub:
    def __init__(self) -> None:
        # _sockets routes frames by client id; _open holds every open socket (a replaced one too) with
        # its TCP transport, so a simulated crash can cut them all.
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._open: dict[web.WebSocketResponse, asyncio.BaseTransport | None] = {}
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

    async def close_all(self, abrupt: bool = False) -> int:
        """Close every socket now and return how many; clients see a dropped connection and must reconnect.

        ``abrupt`` cuts the TCP connections without a close frame, as a killed server does; otherwise each
        socket gets a close frame (code 1001, going away).
        """
        sockets = list(self._open.items())
        self._sockets.clear()
        self._open.clear()
        await asyncio.gather(*(self._close(socket, transport, abrupt) for socket, transport in sockets))
        return len(sockets)

    def close_all_threadsafe(self, abrupt: bool = False) -> concurrent.futures.Future[int]:
        """:meth:`close_all` from any thread; the future holds the number of sockets closed."""
        if self._loop is not None:
            coroutine = self.close_all(abrupt)
            try:
                return asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            except RuntimeError:  # the loop has closed: no socket is left open
                coroutine.close()
        nothing: concurrent.futures.Future[int] = concurrent.futures.Future()
        nothing.set_result(0)
        return nothing

    @property
    def connected(self) -> int:
        return len(self._open)

    def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        """Queue ``{"type": event, "data": data}`` for ``sid`` (None: everyone); safe from any thread."""
        if self._loop is None or self._queue is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (event, data, sid))
        except RuntimeError:
            logger.debug("event loop closed; dropping %s frame", event)

    def register(
        self, sid: str, socket: web.WebSocketResponse, transport: asyncio.BaseTransport | None = None
    ) -> None:
        # A reconnect under the same client id replaces the old socket, which gets no more frames.
        self._sockets[sid] = socket
        self._open[socket] = transport
        self.connections_total += 1

    def unregister(self, sid: str, socket: web.WebSocketResponse) -> None:
        # Only forget the socket if it is still the registered one: a late close of a replaced socket
        # must not cut off its successor.
        self._open.pop(socket, None)
        if self._sockets.get(sid) is socket:
            del self._sockets[sid]

    async def send_now(self, socket: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        """Send directly, bypassing the queue: the greeting frames of a new connection."""
        await socket.send_str(json.dumps({"type": event, "data": data}))

    @staticmethod
    async def _close(socket: web.WebSocketResponse, transport: asyncio.BaseTransport | None, abrupt: bool) -> None:
        if abrupt and transport is not None:
            transport.abort()
            return
        with contextlib.suppress(Exception):
            await socket.close(code=1001, message=b"going away")

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
