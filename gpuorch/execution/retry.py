"""Retry policy for ComfyUI calls: back off while the server is unreachable, give up after N attempts."""

from __future__ import annotations

import logging
from typing import Callable

from tenacity import before_sleep_log, retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from gpuorch.comfyui.errors import ComfyUnavailable

log = logging.getLogger(__name__)


def comfy_retry(attempts: int, *, max_wait: float = 20.0, on_retry: Callable[[], None] | None = None):
    """A decorator factory: retry a ComfyUI call on ComfyUnavailable only, with exponential backoff;
    `on_retry` is called before each retry (to count them)."""
    logged = before_sleep_log(log, logging.WARNING)

    def before_sleep(state) -> None:
        logged(state)
        if on_retry is not None:
            on_retry()

    return retry(
        retry=retry_if_exception_type(ComfyUnavailable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=max_wait),
        before_sleep=before_sleep,
        reraise=True,
    )
