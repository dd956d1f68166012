"""Addresses in AWS: s3://bucket/key URIs and EC2 instance ids, parsed and recognised in one place each."""

from __future__ import annotations

import pytest

from gpuorch.aws.ec2 import is_instance_id
from gpuorch.aws.s3 import S3Uri, parse_s3_prefix, parse_s3_uri


@pytest.mark.parametrize("text, uri", [
    ("s3://bucket/results/j/out.png", S3Uri("bucket", "results/j/out.png")),
    ("s3://bucket/a b?c#d", S3Uri("bucket", "a b?c#d")),  # like the AWS CLI: the rest is the key
    ("s3://my.bucket.name/deep/path.webp", S3Uri("my.bucket.name", "deep/path.webp")),
    ("s3://abc/k", S3Uri("abc", "k")),
])
def test_an_s3_uri_is_its_bucket_and_key(text, uri):
    assert parse_s3_uri(text) == uri
    assert str(uri) == text


@pytest.mark.parametrize("text, reason", [
    ("https://bucket/key", "not an s3://bucket/key URI"),
    ("S3://bucket/key", "not an s3://bucket/key URI"),
    ("s3://bucket", "needs an object key"),
    ("s3://bucket/", "needs an object key"),
    ("s3:///key", "'' is not a valid S3 bucket name"),
    ("s3://ab/key", "'ab' is not a valid S3 bucket name"),
    ("s3://Upper/key", "'Upper' is not a valid S3 bucket name"),
    ("s3://-bucket/key", "'-bucket' is not a valid S3 bucket name"),
    ("s3://a..b/key", "'a..b' is not a valid S3 bucket name"),
    ("s3://" + "b" * 64 + "/key", "is not a valid S3 bucket name"),
])
def test_anything_else_is_refused_saying_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_s3_uri(text)


@pytest.mark.parametrize("text, prefix", [
    ("s3://models", S3Uri("models", "")),
    ("s3://models/", S3Uri("models", "")),
    ("s3://models/qwen/v1/", S3Uri("models", "qwen/v1")),
])
def test_an_s3_prefix_is_its_bucket_and_a_key_prefix(text, prefix):
    assert parse_s3_prefix(text) == prefix


@pytest.mark.parametrize("text", ["https://models/qwen", "s3://Models/qwen", "s3:///qwen"])
def test_an_s3_prefix_needs_the_scheme_and_a_bucket_name(text):
    with pytest.raises(ValueError):
        parse_s3_prefix(text)


@pytest.mark.parametrize("text, valid", [
    ("i-0123456789abcdef0", True),  # 17 hex digits: every instance since 2016
    ("i-0123abcd", True),  # 8: older ones
    ("i-0123456789ab", False),  # neither length
    ("i-0123456789ABCDEF0", False),
    ("i-0123456789abcdef0\n", False),
    ("i-0123456789abcdef0 ", False),
    ("i-test-gpu", False),
    ("0123456789abcdef0", False),
    ("", False),
])
def test_an_instance_id_is_i_and_8_or_17_hex_digits(text, valid):
    assert is_instance_id(text) is valid
