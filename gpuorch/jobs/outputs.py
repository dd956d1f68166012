"""Download links for job outputs: presigned S3 GETs, made afresh for each answer (API) or webhook attempt, never stored."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from botocore.config import Config

from gpuorch.aws.clients import DEFAULT_CONFIG, AwsClients
from gpuorch.aws.s3 import parse_s3_uri
from gpuorch.clock import timestamp, utc_now
from gpuorch.settings import Settings

# SigV4: S3 refuses SigV2 signatures on buckets made since 2020, and boto3 still presigns with SigV2 by default.
SIGNING_CONFIG = DEFAULT_CONFIG.merge(Config(signature_version="s3v4"))


def expiry(signed_at: datetime, seconds: int) -> datetime:
    """When a URL signed at ``signed_at`` for ``seconds`` stops working.

    The signature carries its time in whole seconds, taken no earlier than ``signed_at``: counting from
    ``signed_at`` cut to the second gives a moment the URL is sure to work until.
    """
    return signed_at.replace(microsecond=0) + timedelta(seconds=seconds)


@dataclass(frozen=True)
class OutputLinks:
    """Adds ``url`` and ``url_expires_at`` to job output records; presigning is local, no AWS call is made."""

    aws: AwsClients
    seconds: int
    clock: Callable[[], datetime] = utc_now

    @classmethod
    def from_settings(cls, settings: Settings) -> "OutputLinks":
        return cls(AwsClients(settings, config=SIGNING_CONFIG), settings.output_url_seconds)

    def link(self, output: Mapping[str, Any]) -> dict[str, Any]:
        uri = parse_s3_uri(output["uri"])
        signed_at = self.clock()
        url = self.aws.s3.generate_presigned_url(
            "get_object", Params={"Bucket": uri.bucket, "Key": uri.key}, ExpiresIn=self.seconds
        )
        return {**output, "url": url, "url_expires_at": timestamp(expiry(signed_at, self.seconds))}
