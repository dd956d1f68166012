"""boto3 clients for one Settings: the same code reaches AWS or the local moto server."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import boto3
from botocore.config import Config

from gpuorch.settings import Settings

# Standard retry mode backs off on throttling and 5xx; adaptive would also rate-limit the client.
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True)
class AwsClients:
    """Lazily built, thread-safe boto3 clients (boto3 clients may be shared across threads)."""

    settings: Settings

    def _client(self, service: str):
        kwargs = {"region_name": self.settings.region, "config": _BOTO_CONFIG}
        if self.settings.aws_endpoint_url:
            kwargs["endpoint_url"] = self.settings.aws_endpoint_url
        # A session per client: boto3's default session is not thread-safe to create clients from.
        return boto3.session.Session().client(service, **kwargs)

    @functools.cached_property
    def sqs(self):
        return self._client("sqs")

    @functools.cached_property
    def dynamodb(self):
        return self._client("dynamodb")

    @functools.cached_property
    def s3(self):
        return self._client("s3")

    @functools.cached_property
    def ec2(self):
        return self._client("ec2")

    @functools.cached_property
    def sns(self):
        return self._client("sns")

    def queue_url(self, name: str) -> str:
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
