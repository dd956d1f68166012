"""Which AWS failures are transient: one answer for the job runner, the GPU pool and the input reader."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ParamValidationError,
    ReadTimeoutError,
)

from gpuorch.aws.failures import condition_failed, error_code, is_transient


def client_error(code: str, status: int) -> ClientError:
    """An error exactly as botocore raises it for an AWS error answer."""
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "AnyOperation")


@pytest.mark.parametrize("error, transient", [
    # Throttled, in each service's spelling.
    (client_error("SlowDown", 503), True),
    (client_error("Throttling", 400), True),
    (client_error("ThrottlingException", 400), True),
    (client_error("RequestLimitExceeded", 503), True),
    (client_error("RequestThrottledException", 400), True),
    (client_error("TooManyRequestsException", 429), True),
    (client_error("ProvisionedThroughputExceededException", 400), True),
    (client_error("", 429), True),
    # A server error, whatever its code says.
    (client_error("InternalError", 500), True),
    (client_error("ServiceUnavailable", 503), True),
    (client_error("Unavailable", 400), True),
    (client_error("RequestTimeout", 400), True),
    (client_error("SomethingNew", 502), True),
    (client_error("", 502), True),
    # Unreachable or timed out on the way.
    (EndpointConnectionError(endpoint_url="http://x"), True),
    (ConnectionClosedError(endpoint_url="http://x"), True),
    (ConnectTimeoutError(endpoint_url="http://x"), True),
    (ReadTimeoutError(endpoint_url="http://x"), True),
    # Refused as asked: the same call fails the same way again.
    (client_error("ConditionalCheckFailedException", 400), False),
    (client_error("ResourceNotFoundException", 400), False),
    (client_error("NoSuchKey", 404), False),
    (client_error("AccessDenied", 403), False),
    (client_error("UnauthorizedOperation", 403), False),
    (client_error("InvalidInstanceID.NotFound", 400), False),
    (ParamValidationError(report="bad"), False),
    (ValueError("not AWS"), False),
])
def test_transient_means_throttled_a_server_error_or_unreachable(error, transient):
    assert is_transient(error) is transient


def test_a_refused_condition_is_told_apart():
    assert condition_failed(client_error("ConditionalCheckFailedException", 400))
    assert not condition_failed(client_error("TransactionCanceledException", 400))
    assert not condition_failed(ValueError("ConditionalCheckFailedException"))
    assert error_code(client_error("NoSuchKey", 404)) == "NoSuchKey" and error_code(ValueError()) is None
