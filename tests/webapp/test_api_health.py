"""GET /health: SQS, DynamoDB, S3 and the GPU lifecycle are probed; any failure is a 503 naming the component and why;
a GPU start refused (e.g. by the monthly budget) shows as a blocked gpu component, not a 503."""

from __future__ import annotations

import dataclasses
import socket
from datetime import datetime, timedelta, timezone

from gpuorch.celery.app import create_celery_app
from lifecycle.live.check import StatusStore
from lifecycle.live.heartbeats import HeartbeatStore
from lifecycle.live.pool import PoolInstance
from lifecycle.live.refusals import RefusalStore
from lifecycle.model import Action, Decision, Refusal
from lifecycle.live.runs import RunLog
from webapp import create_app

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
BUDGET_REASON = "monthly budget: $99.10 spent of $100.00; an hour more at $2.24/h would pass it"


def closed_port() -> int:
    # Bound and closed again: nothing listens there, so a connection is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_for(settings, clock=lambda: NOW):
    return create_app(settings, celery_app=create_celery_app(settings), clock=clock).test_client()


def decision(*actions: Action) -> Decision:
    return Decision(actions=actions, queue_visible=3, queue_in_flight=0, running=0, pending=0, stopping=0, wanted=1)


def test_healthy_stack_is_200(client, settings, provisioned):
    answer = client.get("/health")

    assert answer.status_code == 200
    assert answer.json["status"] == "ok"
    components = answer.json["components"]
    assert set(components) == {"sqs", "dynamodb", "s3", "gpu", "gpu_instances"}
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
    assert set(components) == {"sqs", "dynamodb", "s3", "gpu", "gpu_instances"}
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


def test_the_gpu_component_before_any_lifecycle_check(provisioned, settings):
    gpu = client_for(settings).get("/health").json["components"]["gpu"]

    assert gpu["status"] == "ok"
    assert gpu["detail"] == {"checked_at": None, "blocked": None, "month_spend_usd": 0.0, "monthly_budget_usd": None,
                             "market": None}


def test_a_budget_blocked_start_is_not_a_503_but_the_gpu_component_says_why(provisioned, settings):
    dynamodb = provisioned.aws.dynamodb
    # This month: two hours of a g6e.2xlarge so far.
    RunLog(dynamodb, settings.control_table, clock=lambda: NOW - timedelta(hours=2)).reconcile(
        [PoolInstance("i-1", "running", "g6e.2xlarge", NOW - timedelta(hours=2))])
    RunLog(dynamodb, settings.control_table, clock=lambda: NOW).reconcile([])
    checked = NOW - timedelta(seconds=20)
    StatusStore(dynamodb, settings.control_table).write(decision(Action("blocked", "i-1", BUDGET_REASON)), checked)
    budgeted = dataclasses.replace(settings, monthly_budget_usd=100.0)

    answer = client_for(budgeted).get("/health")

    assert answer.status_code == 200
    assert answer.json["status"] == "ok"
    gpu = answer.json["components"]["gpu"]
    assert gpu["status"] == "blocked"
    assert gpu["detail"] == {
        "checked_at": checked.isoformat(),
        "blocked": BUDGET_REASON,
        "month_spend_usd": 4.48,
        "monthly_budget_usd": 100.0,
        "market": None,
    }


def test_a_check_that_started_the_gpu_is_ok(provisioned, settings):
    StatusStore(provisioned.aws.dynamodb, settings.control_table).write(
        decision(Action("start", "i-1", "3 job(s) waiting")), NOW)

    gpu = client_for(settings).get("/health").json["components"]["gpu"]

    assert (gpu["status"], gpu["detail"]["checked_at"], gpu["detail"]["blocked"]) == ("ok", NOW.isoformat(), None)


def test_a_missing_control_table_fails_the_gpu_components(provisioned, settings):
    answer = client_for(dataclasses.replace(settings, control_table=f"{settings.control_table}-gone")).get("/health")

    assert answer.status_code == 503
    components = answer.json["components"]
    assert {name for name, state in components.items() if state["status"] == "error"} == {"gpu", "gpu_instances"}
    assert "ResourceNotFoundException" in components["gpu"]["error"]
    assert "ResourceNotFoundException" in components["gpu_instances"]["error"]


def test_the_gpu_instances_component_shows_each_instance_and_its_heartbeats(provisioned, settings):
    dynamodb = provisioned.aws.dynamodb
    running = PoolInstance("i-1", "running", "g6e.2xlarge", NOW - timedelta(hours=1))
    stopped = PoolInstance("i-2", "stopped", "g6e.2xlarge", NOW - timedelta(days=1))
    StatusStore(dynamodb, settings.control_table).write(decision(), NOW - timedelta(seconds=10), [running, stopped])
    beats = HeartbeatStore(dynamodb, settings.control_table, ttl_s=3600, clock=lambda: NOW - timedelta(seconds=4),
                           instance_arn=provisioned.aws.instance_arn)
    beats.beat("i-1", ["job-1"], True, comfyui_at=NOW - timedelta(seconds=4))

    answer = client_for(settings).get("/health")

    assert answer.status_code == 200
    component = answer.json["components"]["gpu_instances"]
    assert component["status"] == "ok"
    hosts = {host["instance_id"]: host for host in component["detail"]["instances"]}
    assert (hosts["i-1"]["state"], hosts["i-1"]["health"]) == ("running", "ok")
    assert hosts["i-1"]["worker"]["age_s"] == 4.0 and hosts["i-1"]["worker"]["running_jobs"] == 1
    assert hosts["i-1"]["comfyui"]["age_s"] == 4.0
    # A stopped GPU with no worker is how an idle deployment looks: not a problem.
    assert (hosts["i-2"]["state"], hosts["i-2"]["health"], hosts["i-2"]["worker"]) == ("stopped", "off", None)


def test_a_running_instance_whose_worker_went_quiet_is_stale_but_not_a_503(provisioned, settings):
    dynamodb = provisioned.aws.dynamodb
    StatusStore(dynamodb, settings.control_table).write(
        decision(), NOW, [PoolInstance("i-1", "running", "g6e.2xlarge", NOW - timedelta(hours=1))])
    quiet = NOW - timedelta(seconds=10 * settings.heartbeat_seconds)
    HeartbeatStore(dynamodb, settings.control_table, ttl_s=3600, clock=lambda: quiet,
                   instance_arn=provisioned.aws.instance_arn).beat(
        "i-1", [], True, comfyui_at=quiet)

    answer = client_for(settings).get("/health")

    assert (answer.status_code, answer.json["status"]) == (200, "ok")
    component = answer.json["components"]["gpu_instances"]
    assert component["status"] == "stale"
    [host] = component["detail"]["instances"]
    assert host["health"] == "stale"
    assert host["reason"] == "running, but its GPU worker last reported 150 s ago (limit 45 s)"


def test_an_instance_that_cannot_serve_is_named_with_why_and_blocks_the_component(provisioned, settings):
    dynamodb = provisioned.aws.dynamodb
    reason = "camera-angle: the server has no loras file 'x.safetensors'"
    RefusalStore(dynamodb, settings.control_table, instance_arn=provisioned.aws.instance_arn).record(
        Refusal("i-1", NOW - timedelta(seconds=60), (reason,), "f" * 64, held_against="conf"))
    StatusStore(dynamodb, settings.control_table).write(
        dataclasses.replace(decision(), held=("i-1",)), NOW - timedelta(seconds=5),
        [PoolInstance("i-1", "stopped", "g6e.2xlarge", NOW - timedelta(hours=1))])

    answer = client_for(settings).get("/health")

    assert (answer.status_code, answer.json["status"]) == (200, "ok")  # jobs are still accepted: not a 503
    component = answer.json["components"]["gpu_instances"]
    assert component["status"] == "blocked"
    [host] = component["detail"]["instances"]
    assert (host["instance_id"], host["state"], host["health"]) == ("i-1", "stopped", "refused")
    assert host["reason"].startswith(f"its worker refused to start: {reason}; held until")
    assert host["refusal"]["held"] is True and host["refusal"]["reasons"] == [reason]
def test_the_gpu_components_show_the_markets_and_an_interrupted_instance(provisioned, settings):
    dynamodb = provisioned.aws.dynamodb
    spot = PoolInstance("i-spot", "running", "g6e.2xlarge", NOW - timedelta(hours=1), market="spot")
    on_demand = PoolInstance("i-od", "pending", "g6e.2xlarge", NOW, market="on-demand")
    market = {
        "last_start": {"instance_id": "i-od", "market": "on-demand", "at": NOW.isoformat()},
        "last_fallback": None,
    }
    StatusStore(dynamodb, settings.control_table).write(decision(), NOW, [spot, on_demand], market)
    notice = NOW + timedelta(seconds=90)
    HeartbeatStore(dynamodb, settings.control_table, ttl_s=3600, clock=lambda: NOW - timedelta(seconds=2),
                   instance_arn=provisioned.aws.instance_arn).beat(
        "i-spot", ["job-1"], True, comfyui_at=NOW - timedelta(seconds=2), interruption_at=notice)

    components = client_for(settings).get("/health").json["components"]

    assert components["gpu"]["detail"]["market"] == market
    assert components["gpu_instances"]["status"] == "ok"  # interrupted is not stale: the replacement is starting
    hosts = {host["instance_id"]: host for host in components["gpu_instances"]["detail"]["instances"]}
    assert (hosts["i-spot"]["market"], hosts["i-spot"]["health"]) == ("spot", "interrupted")
    assert hosts["i-spot"]["reason"] == f"spot interruption notice: EC2 stops it at {notice.isoformat()}"
    assert (hosts["i-od"]["market"], hosts["i-od"]["health"]) == ("on-demand", "starting")
