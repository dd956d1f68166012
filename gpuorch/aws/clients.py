"""boto3 clients for one Settings: the same code reaches AWS or the local moto server."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass

import boto3
from botocore.config import Config

from gpuorch.aws.ec2 import InstanceArns, caller_instance_arns
from gpuorch.settings import Settings

# Standard retry mode backs off on throttling and 5xx; adaptive would also rate-limit the client.
DEFAULT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


def client_config(settings: Settings) -> Config:
    """DEFAULT_CONFIG with the settings' number of attempts per call (GPUORCH_AWS_MAX_ATTEMPTS)."""
    return DEFAULT_CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts}))


def probe_config(timeout: float) -> Config:
    """For health probes: short timeouts and a single attempt, so a dead endpoint is reported at once."""
    return Config(connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "total_max_attempts": 1})


# Creating clients from one session is not thread-safe.
_SESSION_LOCK = threading.Lock()


def _unlock_in_child() -> None:
    # A forked child (Celery's pool, gunicorn's workers) starts with one thread: a lock some other thread of the
    # parent held at the fork would never be released there.
    global _SESSION_LOCK
    _SESSION_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_unlock_in_child)


@functools.cache
def _process_session() -> boto3.session.Session:
    """The process's one boto3 session: a session parses each service's model once, and that parse is the costly
    part of a client (the API alone builds four AwsClients: jobs, health probes, output links, the GPU pool)."""
    return boto3.session.Session()


@dataclass(frozen=True)
class AwsClients:
    """Lazily built boto3 clients from the process's one session (clients are thread-safe once built)."""

    settings: Settings
    config: Config | None = None  # None: client_config(settings)

    def _client(self, service: str):
        kwargs = {"region_name": self.settings.region, "config": self.config or client_config(self.settings)}
        if self.settings.aws_endpoint_url:
            kwargs["endpoint_url"] = self.settings.aws_endpoint_url
        with _SESSION_LOCK:
            return _process_session().client(service, **kwargs)

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

    # `gpuorch deploy`'s (an operator's), never a process's.
    @functools.cached_property
    def cloudformation(self):
        return self._client("cloudformation")

    @functools.cached_property
    def ssm(self):
        return self._client("ssm")

    @functools.cached_property
    def sts(self):
        return self._client("sts")

    @functools.cached_property
    def instance_arns(self) -> InstanceArns:
        """How IAM names this account's instances in the settings' region (one STS call, at the first need)."""
        return caller_instance_arns(self.sts, self.settings.region)

    def instance_arn(self, instance_id: str) -> str:
        """The ARN of an instance of this account in the settings' region (the GPU pool's)."""
        return self.instance_arns.of(instance_id)

    def queue_url(self, name: str) -> str:
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
