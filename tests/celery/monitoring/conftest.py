"""A Celery app with a broadcast namespace of the test's own, and readers of the queues and subscriptions it left."""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid

import pytest

from gpuorch.aws.sqs import queue_depth
from gpuorch.celery.app import create_celery_app
from gpuorch.celery.monitoring.names import BroadcastNames


@pytest.fixture
def monitored(provisioned):
    """Provisioned settings with monitoring on and a namespace no other test uses."""
    return dataclasses.replace(provisioned.settings, monitoring=True, monitoring_namespace=f"m{uuid.uuid4().hex[:8]}")


@pytest.fixture
def names(monitored) -> BroadcastNames:
    return BroadcastNames(monitored.monitoring_namespace)


@pytest.fixture
def app(monitored):
    app = create_celery_app(monitored)
    yield app
    app.close()


@pytest.fixture
def aws(provisioned):
    return provisioned.aws


class Broadcasts:
    """The namespace's queues and subscriptions as the moto server has them."""

    def __init__(self, aws, names: BroadcastNames):
        self.aws, self.names = aws, names

    def queues(self, kind: str = "") -> list[str]:
        prefix = f"{self.names.namespace}-{kind}"
        urls = self.aws.sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
        return sorted(url.rsplit("/", 1)[-1] for url in urls)

    def subscriptions(self) -> list[tuple[str, str]]:
        """(topic, queue) for each subscription of the namespace's topics."""
        found = []
        for sub in self.aws.sns.list_subscriptions()["Subscriptions"]:
            topic = sub["TopicArn"].rsplit(":", 1)[-1]
            if topic.startswith(f"{self.names.namespace}-"):
                found.append((topic, sub["Endpoint"].rsplit(":", 1)[-1]))
        return sorted(found)

    def url(self, name: str) -> str:
        return self.aws.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def counts(self, name: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        depth = queue_depth(self.aws.sqs, self.url(name))
        return depth.visible, depth.in_flight


@pytest.fixture
def broadcasts(aws, names) -> Broadcasts:
    return Broadcasts(aws, names)


def drain_until(connection, done, timeout: float = 15.0) -> None:
    """Deliver messages to the connection's consumers until `done()` or the deadline (AssertionError)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            raise AssertionError(f"nothing more arrived in {timeout} s")
        try:
            connection.drain_events(timeout=1)
        except socket.timeout:
            pass
