"""boto3 clients for one Settings: the same code reaches AWS or the local moto server."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

import boto3
from botocore.config import Config

from gpuorch.settings import Settings

# Standard retry mode backs off on throttling and 5xx; adaptive would also rate-limit the client.
DEFAULT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


def client_config(settings: Settings) -> Config:
    """DEFAULT_CONFIG with the settings' number of attempts per call (GPUORCH_AWS_MAX_ATTEMPTS)."""
    return DEFAULT_CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts}))


def probe_config(timeout: float) -> Config:
    """For health probes: short timeouts and a single attempt, so a dead endpoint is reported at once."""
    return Config(connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "total_max_attempts": 1})


@dataclass(frozen=True)
class AwsClients:
    """Lazily built boto3 clients sharing one session (clients are thread-safe once built)."""

    settings: Settings
    config: Config | None = None  # None: client_config(settings)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @functools.cached_property
    def _session(self) -> boto3.session.Session:
        # One session per AwsClients: loading botocore's models is the costly part of a client.
        return boto3.session.Session()

    def _client(self, service: str):
        kwargs = {"region_name": self.settings.region, "config": self.config or client_config(self.settings)}
        if self.settings.aws_endpoint_url:
            kwargs["endpoint_url"] = self.settings.aws_endpoint_url
        with self._lock:  # creating clients from one session is not thread-safe
            return self._session.client(service, **kwargs)

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
