"""Serving the emulator: on the current event loop (the CLI) or on a background thread (tests, local stack)."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

from gpuorch_dev.emulator.config import EmulatorConfig
from gpuorch_dev.emulator.executor import ExecutionHooks
from gpuorch_dev.emulator.instance import Emulator
from gpuorch_dev.emulator.server import EMULATOR_KEY, create_app

logger = logging.getLogger(__name__)


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; return its runner and the port actually bound (``port=0`` picks a free one)."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    logger.info("ComfyUI emulator listening on http://%s:%d (an emulator, not a real ComfyUI)", host, bound_port)
    return runner, bound_port


@dataclass
class RunningEmulator:
    """An emulator served from a background thread; a context manager that stops it on exit."""

    host: str
    port: int
    app: web.Application
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _stopped: asyncio.Event = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, client_id: str) -> str:
        return f"ws://{self.host}:{self.port}/ws?clientId={client_id}"

    @property
    def emulator(self) -> Emulator:
        """The instance behind the server, for fault injection and inspection in tests."""
        return self.app[EMULATOR_KEY]

    def drop_websockets(self, timeout: float = 10.0) -> None:
        """Close every websocket now, as a network blip would; clients must reconnect or poll /history."""
        self.emulator.drop_websockets().result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(timeout)

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@dataclass
class _Startup:
    """What the serving thread reports back to the thread that started it."""

    ready: threading.Event = field(default_factory=threading.Event)
    loop: asyncio.AbstractEventLoop | None = None
    stopped: asyncio.Event | None = None
    port: int = 0
    error: BaseException | None = None


def start_in_thread(
    config: EmulatorConfig, hooks: ExecutionHooks | None = None, timeout: float = 10.0
) -> RunningEmulator:
    """Serve an emulator for ``config`` on its own thread and event loop; returns once it is listening."""
    app = create_app(config, hooks)
    startup = _Startup()

    async def serve() -> None:
        try:
            runner, startup.port = await start_site(app, config.host, config.port)
        except BaseException as exc:
            startup.error = exc
            startup.ready.set()
            raise
        startup.loop, startup.stopped = asyncio.get_running_loop(), asyncio.Event()
        startup.ready.set()
        try:
            await startup.stopped.wait()
        finally:
            await runner.cleanup()

    def main() -> None:
        try:
            asyncio.run(serve())
        except Exception:
            # A failure to start is re-raised by the starting thread; anything later is only logged here.
            if startup.error is None:
                logger.exception("ComfyUI emulator thread failed")

    thread = threading.Thread(target=main, name="comfyui-emulator", daemon=True)
    thread.start()
    if not startup.ready.wait(timeout):
        raise TimeoutError(f"ComfyUI emulator did not start listening within {timeout}s")
    if startup.error is not None or startup.loop is None or startup.stopped is None:
        raise RuntimeError("ComfyUI emulator failed to start") from startup.error
    return RunningEmulator(config.host, startup.port, app, startup.loop, startup.stopped, thread)
