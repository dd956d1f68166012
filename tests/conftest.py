"""Shared fixtures: a moto server over HTTP, settings pointing at it, and provisioned resources."""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid

import pytest
from moto.server import ThreadedMotoServer

from gpuorch.aws.clients import AwsClients
from gpuorch.fresh import close_all
from gpuorch.services import Services
from gpuorch.settings import Settings
from tests.support.resource_pool import ResourcePool, ResourceSet, new_names


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def aws_credentials(tmp_path_factory):
    """Fake credentials, so nothing in the suite can reach a real AWS account; and botocore never asks the instance
    metadata service (for credentials or a region), in this process or in any it starts."""
    mp = pytest.MonkeyPatch()
    for var, value in {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path_factory.mktemp("aws") / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path_factory.mktemp("aws") / "credentials"),
    }.items():
        mp.setenv(var, value)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def no_refresh_outlives_its_test():
    """An API made by a test keeps what it reuses fresh from a thread (gpuorch.fresh): stopped when the test ends, so
    that no read of one test's lands in another's logs."""
    yield
    close_all()


@pytest.fixture(scope="session")
def moto_endpoint(aws_credentials) -> str:
    """A moto server on loopback, reached over HTTP exactly as AWS would be."""
    port = free_port()
    # The resource pool purges a set's queues between tests, seconds apart: SQS (and moto by default) allows one
    # purge a minute per queue.
    mp = pytest.MonkeyPatch()
    mp.setenv("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    mp.undo()


def unique_settings(endpoint: str, names: dict[str, str] | None = None, **overrides) -> Settings:
    """Settings on `endpoint` with resource names unique to the caller, so tests never see each other's jobs:
    `names` (a pooled set's, see `resources`) or new ones."""
    return dataclasses.replace(
        Settings(),
        aws_endpoint_url=endpoint,
        **(names or new_names()),
        gpu_pool=f"pool-{uuid.uuid4().hex[:8]}",
        receive_wait_seconds=1,
        instance_id="i-test-gpu",  # never ask the instance metadata service from a test
        # No fixed metrics ports: tests (and other checkouts' tests) run side by side; a test that scrapes picks one.
        **{"gpu_metrics_port": 0, "control_metrics_port": 0, **overrides},
    )


@pytest.fixture(scope="session")
def resource_pool(moto_endpoint) -> ResourcePool:
    return ResourcePool(AwsClients(unique_settings(moto_endpoint)))


@pytest.fixture
def resources(request, resource_pool) -> ResourceSet:
    """The test's queue, table and bucket names. A test that asks for `provisioned` gets a pooled set, provisioned
    once and emptied for it (tests/support/resource_pool.py); any other test, names of resources that do not exist."""
    if "provisioned" not in request.fixturenames:
        yield ResourceSet(new_names())
        return
    taken = resource_pool.take()
    yield taken
    resource_pool.give_back(taken)


@pytest.fixture
def settings(moto_endpoint, resources) -> Settings:
    return unique_settings(moto_endpoint, resources.names, allow_insecure_inputs=True)


@pytest.fixture
def provisioned(settings, resources, resource_pool) -> Services:
    """Services over provisioned queues, tables and bucket of the test's own, empty when it starts."""
    services = Services(settings)
    resource_pool.provision(resources, settings)
    return services


def make_key(services: Services, owner: str = "alice", *, operator: bool = False, **limits) -> str:
    """A new API key's token in the provisioned key table (the way `gpuorch keys create` makes one)."""
    from gpuorch.access.keys import OPERATOR, USER, KeyStore

    _key, token = KeyStore(services.aws.dynamodb, services.settings.key_table).create(
        owner, role=OPERATOR if operator else USER, name="test", **limits)
    return token


@pytest.fixture
def api_key(provisioned) -> str:
    """A user key of owner alice."""
    return make_key(provisioned, "alice")


@pytest.fixture
def operator_key(provisioned) -> str:
    """An operator key (owner ops)."""
    return make_key(provisioned, "ops", operator=True)
