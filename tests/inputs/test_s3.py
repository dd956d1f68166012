"""fetch_input for s3:// URIs: the bucket allow-list, size cap, and error classification."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from gpuorch.inputs import InputPolicy, InputRejected, InputUnavailable, fetch_image, fetch_input

from .conftest import png_bytes

POLICY = InputPolicy(allowed_buckets={"gpuorch-inputs"}, max_bytes=4096)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        for bucket in ("gpuorch-inputs", "someone-elses-bucket"):
            client.create_bucket(Bucket=bucket)
        yield client


def test_reads_an_allowed_object(s3: Any) -> None:
    image = png_bytes()
    s3.put_object(Bucket="gpuorch-inputs", Key="jobs/1/in.png", Body=image)
    fetched = fetch_image("s3://gpuorch-inputs/jobs/1/in.png", POLICY, s3_client=s3)
    assert fetched.data == image
    assert fetched.info.format == "PNG"


def test_other_buckets_are_refused_even_when_readable(s3: Any) -> None:
    s3.put_object(Bucket="someone-elses-bucket", Key="in.png", Body=png_bytes())
    with pytest.raises(InputRejected, match="bucket 'someone-elses-bucket' is not one"):
        fetch_input("s3://someone-elses-bucket/in.png", POLICY, s3_client=s3)


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (b"x" * 4097, "big.png", "over the limit of 4096 bytes"),
        (b"", "empty.png", "is empty"),
        (None, "missing.png", "NoSuchKey"),
    ],
)
def test_refused_objects(s3: Any, body: bytes | None, key: str, reason: str) -> None:
    if body is not None:
        s3.put_object(Bucket="gpuorch-inputs", Key=key, Body=body)
    with pytest.raises(InputRejected, match=reason):
        fetch_input(f"s3://gpuorch-inputs/{key}", POLICY, s3_client=s3)


def test_an_object_exactly_at_the_limit_is_read_whole(s3: Any) -> None:
    s3.put_object(Bucket="gpuorch-inputs", Key="edge.bin", Body=b"e" * 4096)
    assert fetch_input("s3://gpuorch-inputs/edge.bin", POLICY, s3_client=s3) == b"e" * 4096


class _FailingS3:
    """An S3 client whose get_object fails the way a struggling service does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_object(self, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                     "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"),
        EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com"),
    ],
)
def test_throttling_and_outages_are_transient(error: Exception) -> None:
    with pytest.raises(InputUnavailable):
        fetch_input("s3://gpuorch-inputs/in.png", POLICY, s3_client=_FailingS3(error))


def test_s3_inputs_need_a_client() -> None:
    with pytest.raises(InputRejected, match="no S3 client"):
        fetch_input("s3://gpuorch-inputs/in.png", POLICY)
