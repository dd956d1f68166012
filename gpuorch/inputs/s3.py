"""Reading an input object from an allow-listed S3 bucket, capped in size."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.aws.failures import error_code, http_status, is_transient
from gpuorch.aws.s3 import S3Uri
from gpuorch.inputs.errors import InputRejected, InputUnavailable
from gpuorch.inputs.policy import InputPolicy

__all__ = ["fetch_s3"]


def fetch_s3(uri: S3Uri, policy: InputPolicy, s3_client: Any) -> bytes:
    """Download ``uri`` with ``s3_client`` (a boto3 S3 client); raises InputRejected or InputUnavailable."""
    if uri.bucket not in policy.allowed_buckets:
        raise InputRejected(f"bucket {uri.bucket!r} is not one inputs may be read from")
    try:
        # Ask for one byte more than allowed: enough to tell "too big" without downloading it all.
        response = s3_client.get_object(Bucket=uri.bucket, Key=uri.key, Range=f"bytes=0-{policy.max_bytes}")
        body = response["Body"]
        try:
            data = body.read(policy.max_bytes + 1)
        finally:
            body.close()
    except ClientError as exc:
        code = error_code(exc)
        if code == "InvalidRange":  # a Range past the end: the object is empty
            raise InputRejected(f"{uri} is empty") from exc
        message = f"{uri}: {code or http_status(exc)} {exc.response.get('Error', {}).get('Message', '')}".rstrip()
        if is_transient(exc):
            raise InputUnavailable(message) from exc
        raise InputRejected(message) from exc
    except (BotoCoreError, OSError) as exc:  # endpoint unreachable, timeouts, broken stream
        raise InputUnavailable(f"{uri}: {exc}") from exc
    if len(data) > policy.max_bytes:
        raise InputRejected(f"{uri} is over the limit of {policy.max_bytes} bytes")
    if not data:
        raise InputRejected(f"{uri} is empty")
    return data
