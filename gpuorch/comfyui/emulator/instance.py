"""One emulator instance: the catalogue, folders, queue, websockets and executor a running emulator owns."""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from gpuorch.comfyui.emulator.catalogue import build_catalogue, load_object_info, with_input_images
from gpuorch.comfyui.emulator.config import EmulatorConfig
from gpuorch.comfyui.emulator.executor import BusyMeter, ExecutionHooks, Executor
from gpuorch.comfyui.emulator.hub import WebSocketHub
from gpuorch.comfyui.emulator.prompt_queue import PromptQueue
from gpuorch.comfyui.emulator.storage import Storage

logger = logging.getLogger(__name__)


class Emulator:
    """One emulator instance: its catalogue, folders, queue, websockets, executor and counters."""

    def __init__(self, config: EmulatorConfig, hooks: ExecutionHooks | None = None):
        self.config = config
        self.base_catalogue = build_catalogue(load_object_info(config.object_info_path), config.model_files)
        self.storage = Storage(config.data_dir)
        self.hub = WebSocketHub()
        self.queue = PromptQueue(config.history_limit, on_change=self._queue_changed)
        self.meter = BusyMeter()
        self.executor = Executor(
            self.queue, self.hub, self.storage, self.catalogue, config.step_seconds, hooks, self.meter
        )
        self._numbers = itertools.count()
        self.counts = {"prompts_submitted": 0, "prompts_rejected": 0, "uploads": 0}

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
