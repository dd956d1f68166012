"""One entry point for job inputs: vet the URI, fetch it from S3 or the web, check the image."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpuorch.inputs.addresses import Resolver, system_resolver
from gpuorch.inputs.errors import InputRejected
from gpuorch.inputs.http_fetch import fetch_http
from gpuorch.inputs.image import ImageInfo, inspect_image
from gpuorch.inputs.policy import InputPolicy
from gpuorch.inputs.s3 import fetch_s3
from gpuorch.inputs.uri import HttpUri, parse_input_uri

__all__ = ["FetchedImage", "fetch_image", "fetch_input"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    info: ImageInfo


def fetch_input(
    uri: str,
    policy: InputPolicy,
    *,
    s3_client: Any = None,
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """The bytes behind ``uri``; raises InputRejected or InputUnavailable."""
    parsed = parse_input_uri(uri, policy)
    if isinstance(parsed, HttpUri):
        data = fetch_http(parsed, policy, resolver=resolver, clock=clock)
    else:
        if s3_client is None:
            raise InputRejected("s3:// inputs are not available here (no S3 client configured)")
        data = fetch_s3(parsed, policy, s3_client)
    logger.debug("fetched input %s (%d bytes)", parsed, len(data))
    return data


def fetch_image(
    uri: str,
    policy: InputPolicy,
    *,
    s3_client: Any = None,
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.monotonic,
) -> FetchedImage:
    """Fetch ``uri`` and make sure it is an image within the policy's limits."""
    data = fetch_input(uri, policy, s3_client=s3_client, resolver=resolver, clock=clock)
    info = inspect_image(data, max_pixels=policy.max_pixels, max_bytes=policy.max_bytes)
    return FetchedImage(data=data, info=info)
