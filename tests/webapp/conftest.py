"""settings -> app -> client for the API, over the moto server; and readers of what a request left behind."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gpuorch.aws.sqs import queue_depth
from gpuorch.celery.app import create_celery_app
from tests.conftest import unique_settings
from webapp import create_app


@pytest.fixture
def settings(moto_endpoint, resources):
    """No rate or backlog limit: those are tested on their own (test_api_limits.py), the rest submit freely. /health's
    probes wait for a moto server slowed by a busy machine: the tests are about what it says, not how soon (a dead
    endpoint in them is a closed port, refused at once)."""
    return unique_settings(moto_endpoint, resources.names, allow_insecure_inputs=True, rate_limit_per_minute=0,
                           max_backlog=0, health_timeout_seconds=30.0)


def keyed(client, token: str):
    """The test client sending `token` as its bearer key on every request."""
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def celery_app(settings):
    """A Celery app of the test's own, so each test publishes to its own uniquely named queues."""
    app = create_celery_app(settings)
    yield app
    app.close()


@pytest.fixture
def app(settings, celery_app):
    """The API over the test's settings; tests that reach AWS also ask for `provisioned`."""
    return create_app(settings, celery_app=celery_app)


@pytest.fixture
def client(app, api_key):
    """A client with a user key of alice (tests/conftest.py api_key) in the test's provisioned key table."""
    return keyed(app.test_client(), api_key)


@pytest.fixture
def operator(app, operator_key):
    """A client with an operator key."""
    return keyed(app.test_client(), operator_key)


class QueueReader:
    """What the GPU and control queues hold, read with plain boto3 as the worker's SQS would see it."""

    def __init__(self, services, settings):
        self.sqs = services.aws.sqs
        self.settings = settings

    def count(self, queue: str) -> int:
        return queue_depth(self.sqs, self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]).total

    def total(self) -> int:
        return sum(self.count(q) for q in (self.settings.gpu_queue, self.settings.control_queue))

    def receive_gpu(self) -> list[dict[str, Any]]:
        """Every message on the GPU queue, as (raw body size, decoded kombu envelope, Celery task body)."""
        return self.receive(self.settings.gpu_queue)

    def receive(self, queue: str) -> list[dict[str, Any]]:
        """Every message on a queue (up to 10), decoded."""
        url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [decode_task_message(m["Body"]) for m in answer.get("Messages", [])]


def decode_task_message(raw: str) -> dict[str, Any]:
    """A kombu SQS message body (base64 JSON envelope, base64 JSON Celery body) as plain data."""
    envelope = json.loads(base64.b64decode(raw))
    assert envelope["properties"]["body_encoding"] == "base64"
    args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return {"size": len(raw), "headers": envelope["headers"], "args": args, "kwargs": kwargs}


@pytest.fixture
def queues(provisioned, settings) -> QueueReader:
    return QueueReader(provisioned, settings)


@pytest.fixture
def job_count(provisioned, settings):
    """How many job records the table holds."""
    return lambda: provisioned.aws.dynamodb.scan(TableName=settings.job_table, Select="COUNT")["Count"]


@pytest.fixture
def stored(provisioned, settings):
    """What the job bucket holds under a prefix: {key: (bytes, content type)}."""

    def read(prefix: str = "inputs/") -> dict[str, tuple[bytes, str]]:
        s3 = provisioned.aws.s3
        listing = s3.list_objects_v2(Bucket=settings.bucket, Prefix=prefix).get("Contents", [])
        objects = {}
        for item in listing:
            answer = s3.get_object(Bucket=settings.bucket, Key=item["Key"])
            objects[item["Key"]] = (answer["Body"].read(), answer["ContentType"])
        return objects

    return read
