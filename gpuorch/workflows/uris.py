"""Syntax of the image URIs a request may name: ``s3://bucket/key`` or ``https://host/path``."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from gpuorch.aws.s3 import parse_s3_uri

__all__ = ["IMAGE_URI_JSON_SCHEMA", "MAX_URI_LENGTH", "image_uri_problem"]

MAX_URI_LENGTH = 2048

#: The JSON Schema of one image URI (coarser than image_uri_problem, which has the last word).
IMAGE_URI_JSON_SCHEMA = {
    "type": "string",
    "format": "uri",
    "pattern": "^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+|https://.+)$",
    "maxLength": MAX_URI_LENGTH,
}

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
    scheme = value.partition("://")[0]
    if scheme == "s3":
        try:
            parse_s3_uri(value)
        except ValueError as exc:
            return str(exc)
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
