"""Addresses in AWS: s3://bucket/key URIs, parsed and written in one place."""

from __future__ import annotations

import pytest

from gpuorch.aws.s3 import S3Uri, parse_s3_uri


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
