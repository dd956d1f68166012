"""Retry policies of a GPU job: a call is tried again only while a dependency is unavailable or AWS is struggling."""

from __future__ import annotations

import logging
from typing import Callable

from tenacity import (
    before_sleep_log, retry, retry_if_exception, retry_if_exception_type, stop_after_attempt, wait_exponential,
)

from gpuorch.aws.failures import is_transient
from gpuorch.errors import Unavailable

log = logging.getLogger(__name__)


def comfy_retry(attempts: int, *, max_wait: float = 20.0, on_retry: Callable[[], None] | None = None):
    """A decorator factory: retry a ComfyUI call while ComfyUI is unavailable, with exponential backoff;
    `on_retry` is called before each retry (to count them)."""
    logged = before_sleep_log(log, logging.WARNING)

    def before_sleep(state) -> None:
        logged(state)
        if on_retry is not None:
            on_retry()

    return retry(
        retry=retry_if_exception_type(Unavailable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=max_wait),
        before_sleep=before_sleep,
        reraise=True,
    )


def transient(exc: BaseException) -> bool:
    """Whether a failure may pass if tried again: gpuorch's Unavailable (an input its host could not serve now, ...),
    or AWS throttled, failing or unreachable (gpuorch.aws.failures: botocore raises those outside gpuorch's tree)."""
    return isinstance(exc, Unavailable) or is_transient(exc)


def aws_retry(attempts: int, *, max_wait: float = 10.0):
    """A decorator factory: retry an AWS call (already retried by botocore) while its failure is transient.

    botocore gives up after a few quick attempts, and its retry quota empties in a long outage; this
    outer layer waits longer between attempts, so a job outlives an outage of about a minute.
    """
    return retry(
        retry=retry_if_exception(transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=1, max=max_wait),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
