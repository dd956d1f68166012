"""One emulator instance: the catalogue, folders, queue, websockets and executor a running emulator owns."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
from typing import Any

from aiohttp import web

from gpuorch_dev.emulator.catalogue import build_catalogue, load_object_info, with_input_images
from gpuorch_dev.emulator.config import EmulatorConfig
from gpuorch_dev.emulator.executor import ChainedHooks, ExecutionHooks, Executor
from gpuorch_dev.emulator.hub import WebSocketHub
from gpuorch_dev.emulator.injector import FaultInjector
from gpuorch_dev.emulator.meter import BusyMeter
from gpuorch_dev.emulator.prompt_queue import PromptQueue
from gpuorch_dev.emulator.storage import Storage

logger = logging.getLogger(__name__)


class Emulator:
    """One emulator instance: its catalogue, folders, queue, websockets, executor, faults and counters.

    ``hooks`` run after the fault injector's at each prompt, node and step.
    """

    def __init__(self, config: EmulatorConfig, hooks: ExecutionHooks | None = None):
        self.config = config
        self.base_catalogue = build_catalogue(load_object_info(config.object_info_path), config.model_files)
        self.storage = Storage(config.data_dir)
        self.hub = WebSocketHub()
        self.queue = PromptQueue(config.history_limit, on_change=self._queue_changed)
        self.meter = BusyMeter(prompt_limit=config.history_limit)
        self.faults = FaultInjector(self)
        chained = ChainedHooks(self.faults, hooks) if hooks is not None else self.faults
        self.executor = Executor(
            self.queue, self.hub, self.storage, self.catalogue, config.step_seconds, chained, self.meter
        )
        self._numbers = itertools.count()
        self.counts = {"prompts_submitted": 0, "prompts_rejected": 0, "uploads": 0}
        self.restarts = 0

    def catalogue(self) -> dict[str, Any]:
        """The live catalogue: configured model files, and the image files now in the input folder."""
        return with_input_images(self.base_catalogue, self.storage.input_images())

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def features(self) -> dict[str, Any]:
        return {
            "supports_preview_metadata": True,
            "max_upload_size": self.config.max_upload_bytes,
            "extension": {"manager": {"supports_v4": True}},
        }

    def next_number(self) -> int:
        return next(self._numbers)

    def restart(self) -> concurrent.futures.Future[int]:
        """Lose what a ComfyUI restart loses, from any thread: the queue, the running prompt (abandoned, it
        never reaches history), history, cached outputs, temp files, prompt numbering and every websocket
        (cut without a close frame). The emulator's counters survive. The future finishes once the sockets
        are closed."""
        self.restarts += 1
        logger.warning("simulating a ComfyUI restart (%d so far): queue, history and sockets lost", self.restarts)
        self.queue.forget_everything(include_running=True)
        self.executor.interrupt()
        self.executor.free_memory()
        self.executor.cache.clear()
        self._numbers = itertools.count()
        self.storage.prepare()
        return self.hub.close_all_threadsafe(abrupt=True)

    def drop_websockets(self, abrupt: bool = False) -> concurrent.futures.Future[int]:
        """Close every websocket, from any thread; the running prompt carries on."""
        logger.warning("dropping every websocket (%s)", "abruptly" if abrupt else "with a close frame")
        return self.hub.close_all_threadsafe(abrupt=abrupt)

    def wait_for_interrupt(self, timeout: float) -> bool:
        return self.executor.wait_for_interrupt(timeout)

    async def start(self) -> None:
        self.storage.prepare()
        await self.hub.start()
        self.executor.start()
        logger.warning(
            "This is the gpuorch ComfyUI EMULATOR, not a real ComfyUI server: model nodes are simulated "
            "and their images are stand-ins marked as emulated (data dir %s)",
            self.config.data_dir,
        )

    async def stop(self) -> None:
        await asyncio.to_thread(self.executor.stop)
        await self.hub.stop()

    def _queue_changed(self) -> None:
        self.hub.send("status", {"status": self.queue_info()})


EMULATOR_KEY = web.AppKey("comfyui_emulator", Emulator)
