"""Image URI syntax: s3://bucket/key and https:// only; everything else named with a reason."""

from __future__ import annotations

import pytest

from gpuorch.workflows.uris import MAX_URI_LENGTH, image_uri_problem


@pytest.mark.parametrize(
    "uri",
    [
        "s3://my-bucket/key.png",
        "s3://my.bucket.name/deep/path/to/image.webp",
        "s3://abc/k",
        "https://example.com/image.png",
        "https://cdn.example.com:8443/a/b.jpg?sig=abc&x=1",
        "https://[2001:db8::1]/x.png",
    ],
)
def test_accepted(uri):
    assert image_uri_problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("", "must be an s3://bucket/key or https:// URI"),
        ("http://example.com/x.png", "must be an s3://bucket/key or https:// URI"),
        ("S3://bucket/key", "must be an s3://bucket/key or https:// URI"),
        ("file:///etc/passwd", "must be an s3://bucket/key or https:// URI"),
        ("/local/path.png", "must be an s3://bucket/key or https:// URI"),
        ("s3://ab/key", "'ab' is not a valid S3 bucket name"),
        ("s3://Upper/key", "'Upper' is not a valid S3 bucket name"),
        ("s3://-bucket/key", "'-bucket' is not a valid S3 bucket name"),
        ("s3://bucket", "needs an object key"),
        ("s3://bucket/", "needs an object key"),
        ("https://", "needs a host name"),
        ("https:///path", "needs a host name"),
        ("https://bad_host.com/x", "'bad_host.com' is not a valid host name"),
        ("https://user:secret@example.com/x", "credentials in the URL are not accepted"),
        ("https://example.com:99999/x", "the port is not a number"),
        ("https://example.com/a b.png", "must not contain spaces"),
        ("s3://bucket/key\n", "must not contain spaces or control characters"),
        ("https://example.com/" + "a" * MAX_URI_LENGTH, f"longer than {MAX_URI_LENGTH} characters"),
    ],
)
def test_refused(uri, problem):
    assert problem in (image_uri_problem(uri) or "")
