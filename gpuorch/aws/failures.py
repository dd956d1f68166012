"""Reading botocore's failures: whether one may pass if tried again, and whether a write's condition refused it."""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

# Codes that say "not now" rather than "never"; each service spells throttling its own way.
THROTTLING_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
})
# Server errors some services answer with a 4xx status, or whose status a proxy may have rewritten.
SERVER_ERROR_CODES = frozenset({
    "RequestTimeout", "InternalError", "InternalServerError", "InternalFailure", "ServiceUnavailable", "Unavailable",
})
TRANSIENT_CODES = THROTTLING_CODES | SERVER_ERROR_CODES
CONDITION_FAILED = "ConditionalCheckFailedException"


def error_code(exc: BaseException) -> str | None:
    """The code of an AWS error answer (None for anything else)."""
    return exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None


def http_status(exc: ClientError) -> int:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0


def is_transient(exc: BaseException) -> bool:
    """Whether an AWS failure may pass if tried again: throttled, a server error, unreachable or timed out.

    A refused condition, a missing resource, a denied permission or bad parameters would fail the same way again.
    """
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):  # refused, reset, or timed out on the way
        return True
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in TRANSIENT_CODES or status >= 500 or status == 429
    return False


def condition_failed(exc: BaseException) -> bool:
    """Whether DynamoDB refused a write because its condition did not hold (a late or losing writer)."""
    return error_code(exc) == CONDITION_FAILED
