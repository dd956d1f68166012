"""`gpuorch gpu status|start|stop` against the pool on the moto server."""

import json

from datetime import datetime, timezone

from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.pool import InstancePool
from lifecycle.live.refusals import RefusalStore
from lifecycle.model import Refusal


def test_status_start_and_stop(gpuorch, provisioned, settings):
    pool = InstancePool(provisioned.aws.ec2, settings.gpu_pool)
    instance_id = create_local_instance(provisioned.aws.ec2, settings.gpu_pool)

    listed = gpuorch("gpu", "status", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(i["instance_id"], i["state"]) for i in json.loads(listed.stdout)] == [(instance_id, "stopped")]

    started = gpuorch("gpu", "start", instance_id)
    assert started.exit_code == 0 and pool.get(instance_id).state == "running"
    again = gpuorch("gpu", "start", instance_id)  # idempotent
    assert again.exit_code == 0 and instance_id in again.stdout

    stopped = gpuorch("gpu", "stop", instance_id)
    assert stopped.exit_code == 0 and pool.get(instance_id).state == "stopped"


def test_an_instance_outside_the_pool_is_refused(gpuorch, provisioned):
    answer = gpuorch("gpu", "start", "i-0123456789abcdef0")
    assert answer.exit_code == 1 and "error:" in answer.stderr


def test_an_empty_pool_says_so(gpuorch, provisioned, settings):
    answer = gpuorch("gpu", "status")
    assert answer.exit_code == 0 and f"gpuorch:pool={settings.gpu_pool}" in answer.stdout


def test_start_releases_a_held_instance(gpuorch, provisioned, settings):
    instance_id = create_local_instance(provisioned.aws.ec2, settings.gpu_pool)
    refusals = RefusalStore(provisioned.aws.dynamodb, settings.control_table, instance_arn=provisioned.aws.instance_arn)
    refusals.record(Refusal(instance_id, datetime.now(timezone.utc), ("not ready within its boot grace",),
                            source="lifecycle", held_against="c"))

    started = gpuorch("gpu", "start", instance_id)

    assert started.exit_code == 0, started.output
    assert started.stdout.splitlines() == [f"{instance_id}: released from its hold (not ready within its boot grace)",
                                           f"{instance_id}: started"]
    assert refusals.refusals() == ()
