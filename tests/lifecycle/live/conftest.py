"""Fixtures for the lifecycle's AWS side: the moto server's EC2 and control table, a settable clock, fakes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from gpuorch.aws.clients import AwsClients
from gpuorch.settings import Settings
from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.pool import EC2_CLIENT_CONFIG


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: datetime = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def client_error(code: str, operation: str, *, status: int = 400, message: str = "") -> ClientError:
    """An error exactly as botocore raises it for an AWS error answer."""
    return ClientError(
        {"Error": {"Code": code, "Message": message or code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


class Ec2Proxy:
    """The moto server's EC2 client, recording each call; a subclass changes what chosen calls do."""

    def __init__(self, real):
        self.real = real
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def call(**kwargs):
            self.calls.append(name)
            return self.intercept(name, attr, kwargs)

        return call

    def intercept(self, name, method, kwargs):
        return method(**kwargs)

    def count(self, name: str) -> int:
        return self.calls.count(name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def ec2(moto_endpoint):
    """One EC2 client on the moto server for the session; tests keep apart by pool name."""
    return AwsClients(Settings(aws_endpoint_url=moto_endpoint), config=EC2_CLIENT_CONFIG).ec2


@pytest.fixture
def pool_name() -> str:
    """A pool of its own per test: the moto server, and so its instances, last the whole session."""
    return f"gpu-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def stopped_instance(ec2, pool_name) -> str:
    return create_local_instance(ec2, pool_name)


@pytest.fixture
def dynamodb(provisioned):
    return provisioned.aws.dynamodb


@pytest.fixture
def control_table(provisioned) -> str:
    return provisioned.settings.control_table


@pytest.fixture
def instance_arn(provisioned):
    """An instance id -> its ARN as IAM names it, in the moto server's account (the stores key items by it)."""
    return provisioned.aws.instance_arn
