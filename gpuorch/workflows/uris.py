"""Syntax of the image URIs a request may name: ``s3://bucket/key`` or ``https://host/path``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["IMAGE_URI_JSON_SCHEMA", "MAX_URI_LENGTH", "image_uri_problem"]

MAX_URI_LENGTH = 2048

#: The JSON Schema of one image URI (coarser than image_uri_problem, which has the last word).
IMAGE_URI_JSON_SCHEMA = {
    "type": "string",
    "format": "uri",
    "pattern": "^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+|https://.+)$",
    "maxLength": MAX_URI_LENGTH,
}

# S3's own bucket naming rule (3-63 characters, lower case, digits, dots, hyphens, letter or digit at
# both ends); anything else can never name a real bucket.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")


def image_uri_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable image URI (a lower-case phrase), or None when it is.

    Only the syntax is judged here; whether the bucket or host is allowed, and the download itself,
    belong to whoever fetches the image.
    """
    if len(value) > MAX_URI_LENGTH:
        return f"longer than {MAX_URI_LENGTH} characters"
    if not value.isprintable() or any(ch.isspace() for ch in value):
        return "must not contain spaces or control characters"
    # Schemes are matched in lower case only, as the fetcher spells them.
    scheme, _, rest = value.partition("://")
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not _BUCKET.fullmatch(bucket):
            return f"{bucket!r} is not a valid S3 bucket name"
        if not key:
            return "an s3:// URI needs an object key after the bucket: s3://bucket/key"
        return None
    if scheme == "https":
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            return "credentials in the URL are not accepted"
        if not parts.hostname:
            return "an https:// URI needs a host name"
        if not _HOST.fullmatch(parts.hostname):
            return f"{parts.hostname!r} is not a valid host name"
        try:
            parts.port  # noqa: B018 - urlsplit validates the port lazily
        except ValueError:
            return "the port is not a number between 0 and 65535"
        return None
    return "must be an s3://bucket/key or https:// URI"
