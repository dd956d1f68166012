"""GET /api/v1/gpu and POST /api/v1/gpu/{id}/start|stop: the pool on the moto server, for operator keys only."""

from __future__ import annotations

import pytest

from datetime import datetime, timezone

from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.pool import InstancePool
from lifecycle.live.refusals import RefusalStore
from lifecycle.model import Refusal


def test_the_pool_its_start_and_stop(operator, provisioned, settings):
    pool = InstancePool(provisioned.aws.ec2, settings.gpu_pool)
    instance_id = create_local_instance(provisioned.aws.ec2, settings.gpu_pool)

    listed = operator.get("/api/v1/gpu")
    assert listed.status_code == 200
    assert listed.json["pool"] == settings.gpu_pool
    assert [(i["instance_id"], i["state"], i["instance_type"], i["market"]) for i in listed.json["instances"]] == [
        (instance_id, "stopped", "g6e.2xlarge", "on-demand")]

    started = operator.post(f"/api/v1/gpu/{instance_id}/start")
    assert started.status_code == 200, started.json
    assert (started.json["outcome"], started.json["state"]) == ("started", pool.get(instance_id).state)
    assert pool.get(instance_id).state == "running"
    again = operator.post(f"/api/v1/gpu/{instance_id}/start")  # idempotent
    assert (again.status_code, again.json["outcome"]) == (200, "already running")

    stopped = operator.post(f"/api/v1/gpu/{instance_id}/stop")
    assert (stopped.status_code, stopped.json["outcome"]) == (200, "stopping")
    assert pool.get(instance_id).state == "stopped"


def test_an_instance_outside_the_pool_is_404(operator, provisioned, settings):
    other = create_local_instance(provisioned.aws.ec2, f"{settings.gpu_pool}-other")

    for instance_id in ("i-0123456789abcdef0", other):
        for action in ("start", "stop"):
            answer = operator.post(f"/api/v1/gpu/{instance_id}/{action}")
            assert answer.status_code == 404, answer.json
            assert answer.json["error"]["code"] == "instance_not_found"
    assert InstancePool(provisioned.aws.ec2, f"{settings.gpu_pool}-other").get(other).state == "stopped"


@pytest.mark.parametrize("instance_id", ["\x1f", "i-xyz", "i-0123456789abcdef0123", "I-0123456789ABCDEF0"])
def test_what_is_no_instance_id_is_404_without_asking_ec2(operator, instance_id):
    answer = operator.post(f"/api/v1/gpu/{instance_id}/start")
    assert (answer.status_code, answer.json["error"]["code"]) == (404, "instance_not_found")


def test_an_empty_pool_lists_nothing(operator, provisioned):
    assert operator.get("/api/v1/gpu").json["instances"] == []


def test_an_operator_start_releases_a_held_instance(operator, provisioned, settings):
    instance_id = create_local_instance(provisioned.aws.ec2, settings.gpu_pool)
    refusals = RefusalStore(provisioned.aws.dynamodb, settings.control_table, instance_arn=provisioned.aws.instance_arn)
    refusals.record(Refusal(instance_id, datetime.now(timezone.utc), ("no loras file 'x'",), "f1", held_against="c"))

    started = operator.post(f"/api/v1/gpu/{instance_id}/start")

    assert started.status_code == 200, started.json
    assert started.json["released"] == "its worker refused to start: no loras file 'x'"
    assert started.json["outcome"] == "started" and refusals.refusals() == ()
    again = operator.post(f"/api/v1/gpu/{instance_id}/start")
    assert again.json["released"] is None
    assert operator.post(f"/api/v1/gpu/{instance_id}/stop").json["released"] is None
