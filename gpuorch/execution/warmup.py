"""Warm-up: run one workflow on a generated image when the GPU worker starts, so the models are loaded."""

from __future__ import annotations

import io
import logging
import time
import uuid

from PIL import Image, ImageDraw

from gpuorch.comfyui.client import ComfyClient
from gpuorch.workflows import Workflow, bind, image_uris
from gpuorch.workflows.check import sample_requests
from gpuorch.model_files import ModelFiles

log = logging.getLogger(__name__)

WARMUP_IMAGE_NAME = "gpuorch-warmup.png"
MIB = 1024 * 1024


def warmup_timeout(model_bytes: int, read_mib_s: float, run_s: float) -> float:
    """Seconds the warm-up may take: ComfyUI reads `model_bytes` from their store at `read_mib_s` (the first run
    loads every model its workflow uses), then runs it like any job (`run_s`, the task time limit).

    Its own limit, not ComfyUI's start-up one: ~31 GiB at gp3's baseline 125 MiB/s alone take about 4 minutes.
    """
    if read_mib_s <= 0:
        raise ValueError("read_mib_s must be positive")
    return model_bytes / (read_mib_s * MIB) + run_s


def warmup_image(size: int = 512) -> bytes:
    """A small, plain PNG: enough for every node to run, cheap to upload."""
    image = Image.new("RGB", (size, size), (128, 150, 170))
    ImageDraw.Draw(image).rectangle([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(200, 90, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def warm_up(comfy: ComfyClient, workflow: Workflow, models: ModelFiles, *, timeout: float) -> float:
    """Run `workflow` once with its sample parameters; returns the seconds it took. Raises ComfyError."""
    started = time.monotonic()
    name = comfy.upload_image(WARMUP_IMAGE_NAME, warmup_image(), overwrite=True)
    _label, params = sample_requests(workflow)[0]
    images = [name] * len(image_uris(workflow, params))
    graph = bind(workflow, params, images, models, output_prefix="gpuorch/warmup", seed_source="warmup")
    prompt_id = str(uuid.uuid4())
    comfy.submit(graph, prompt_id=prompt_id)
    comfy.wait(prompt_id, graph=graph, timeout=timeout)
    elapsed = time.monotonic() - started
    log.info("warm-up with %s done in %.1f s", workflow.name, elapsed)
    return elapsed
