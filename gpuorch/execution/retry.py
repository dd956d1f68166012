"""Retry policies of a GPU job: ComfyUI while it is unreachable, AWS while it is unreachable or throttling."""

from __future__ import annotations

import logging
from typing import Callable

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import (
    before_sleep_log, retry, retry_if_exception, retry_if_exception_type, stop_after_attempt, wait_exponential,
)

from gpuorch.comfyui.errors import ComfyUnavailable
from gpuorch.inputs import InputUnavailable

log = logging.getLogger(__name__)

# AWS error codes that say "not now" rather than "never" (throttling is spelled several ways).
TRANSIENT_AWS_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestLimitExceeded", "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "RequestTimeout", "InternalError", "InternalServerError", "InternalFailure", "ServiceUnavailable",
})


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


def aws_transient(exc: BaseException) -> bool:
    """Whether an AWS failure may pass if tried again: unreachable, timed out, throttled or a server error.

    A refused condition, a missing table or bad parameters would fail the same way again.
    """
    if isinstance(exc, (BotoConnectionError, HTTPClientError, InputUnavailable)):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code") in TRANSIENT_AWS_CODES or status >= 500 or status == 429
    return False


def aws_retry(attempts: int, *, max_wait: float = 10.0):
    """A decorator factory: retry an AWS call (already retried by botocore) while its failure is transient.

    botocore gives up after a few quick attempts, and its retry quota empties in a long outage; this
    outer layer waits longer between attempts, so a job outlives an outage of about a minute.
    """
    return retry(
        retry=retry_if_exception(aws_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=1, max=max_wait),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
