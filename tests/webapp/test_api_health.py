"""GET /health: each of SQS, DynamoDB and S3 is probed; any failure is a 503 naming the component and why."""

from __future__ import annotations

import dataclasses
import socket

from gpuorch.celery_app import GpuorchCelery
from webapp import create_app


def closed_port() -> int:
    # Bound and closed again: nothing listens there, so a connection is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_for(settings):
    return create_app(settings, celery_app=GpuorchCelery(settings_loader=lambda: settings)).test_client()


def test_healthy_stack_is_200(client, settings, provisioned):
    answer = client.get("/health")

    assert answer.status_code == 200
    assert answer.json["status"] == "ok"
    components = answer.json["components"]
    assert set(components) == {"sqs", "dynamodb", "s3"}
    assert {c["status"] for c in components.values()} == {"ok"}
    assert components["sqs"]["detail"] == {"queue": settings.gpu_queue, "messages": 0, "in_flight": 0}
    assert components["dynamodb"]["detail"] == {"table": settings.job_table, "table_status": "ACTIVE"}
    assert components["s3"]["detail"] == {"bucket": settings.bucket}


def test_queued_messages_show_in_the_sqs_component(client, settings, provisioned):
    client.post("/api/v1/camera-angle/jobs", json={"image": f"s3://{settings.bucket}/a.png", "move": "close_up"})

    assert client.get("/health").json["components"]["sqs"]["detail"]["messages"] == 1


def test_unreachable_aws_is_503_naming_every_component(settings):
    unreachable = dataclasses.replace(settings, aws_endpoint_url=f"http://127.0.0.1:{closed_port()}")

    answer = client_for(unreachable).get("/health")

    assert answer.status_code == 503
    assert answer.json["status"] == "degraded"
    components = answer.json["components"]
    assert set(components) == {"sqs", "dynamodb", "s3"}
    for state in components.values():
        assert state["status"] == "error"
        assert "EndpointConnectionError" in state["error"]


def test_one_missing_resource_fails_only_its_component(provisioned, settings):
    answer = client_for(dataclasses.replace(settings, bucket=f"{settings.bucket}-gone")).get("/health")

    assert answer.status_code == 503
    components = answer.json["components"]
    assert (components["sqs"]["status"], components["dynamodb"]["status"]) == ("ok", "ok")
    assert components["s3"]["status"] == "error"
    assert "404" in components["s3"]["error"]


def test_a_job_table_without_the_status_index_is_unhealthy(provisioned, settings):
    bare = f"{settings.job_table}_bare"
    provisioned.aws.dynamodb.create_table(
        TableName=bare,
        KeySchema=[{"AttributeName": "task_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "task_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    answer = client_for(dataclasses.replace(settings, job_table=bare)).get("/health")

    assert answer.status_code == 503
    assert "status-created_at-index" in answer.json["components"]["dynamodb"]["error"]
