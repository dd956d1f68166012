"""A lifecycle check on the moto server counts its starts and stops, gauges the pool by state and the month's
spend, and leaves the instances' states in its status item for /health."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from lifecycle.live.metrics import LifecycleMetrics
from lifecycle.live.check import LifecycleCheck, StatusStore
from lifecycle.live.heartbeats import HeartbeatStore
from lifecycle.live.pool import InstancePool
from lifecycle.live.lease import Lease
from lifecycle.model import Policy
from lifecycle.live.runs import RunLog
from tests.lifecycle.live.conftest import Clock


def make_check(provisioned, ec2, pool_name, clock, metrics) -> LifecycleCheck:
    settings, aws = provisioned.settings, provisioned.aws
    table = settings.control_table
    return LifecycleCheck(
        pool=InstancePool(ec2, pool_name),
        heartbeats=HeartbeatStore(aws.dynamodb, table, ttl_s=3600, clock=clock, instance_arn=aws.instance_arn),
        runs=RunLog(aws.dynamodb, table, clock=clock),
        lease=Lease(aws.dynamodb, table, "lifecycle", owner="test", ttl_s=60, clock=clock),
        status=StatusStore(aws.dynamodb, table),
        sqs=aws.sqs,
        queue_url=aws.queue_url(settings.gpu_queue),
        policy=Policy(idle_stop_s=60),
        hourly_price=lambda _type: 2.24,
        clock=clock,
        metrics=metrics,
    )


def value(registry: CollectorRegistry, name: str, **labels) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_start_and_an_idle_stop_are_counted_and_the_pool_gauged(provisioned, ec2, pool_name, stopped_instance):
    # EC2 (moto) stamps launch times with the real time: the clock starts there and is then moved by hand.
    clock = Clock(datetime.now(timezone.utc))
    registry = CollectorRegistry()
    check = make_check(provisioned, ec2, pool_name, clock, LifecycleMetrics(registry))
    queue_url = provisioned.aws.queue_url(provisioned.settings.gpu_queue)
    provisioned.aws.sqs.send_message(QueueUrl=queue_url, MessageBody="job")

    check.run()

    assert value(registry, "gpuorch_gpu_starts_total", market="on-demand") == 1
    assert value(registry, "gpuorch_gpu_instances", state="running") == 1
    assert value(registry, "gpuorch_gpu_instances", state="stopped") == 0
    assert value(registry, "gpuorch_lifecycle_last_check_timestamp_seconds") == clock().timestamp()
    check.run()  # the job still waits, the instance already runs: nothing more is started
    assert value(registry, "gpuorch_gpu_starts_total", market="on-demand") == 1
    status = StatusStore(provisioned.aws.dynamodb, provisioned.settings.control_table).read()
    [instance] = status.instances
    assert (instance["instance_id"], instance["state"]) == (stopped_instance, "running")

    # The work is gone and the instance idles past the limit: the next checks stop it.
    provisioned.aws.sqs.purge_queue(QueueUrl=queue_url)
    clock.advance(3600)
    check.run()

    assert value(registry, "gpuorch_gpu_stops_total") == 1
    assert value(registry, "gpuorch_gpu_instances", state="running") == 0
    # The spend the check decided on: the run log's month so far (an hour of a g6e.2xlarge, unless that hour
    # began last month), as gpuorch cost reports it.
    spend = RunLog(provisioned.aws.dynamodb, provisioned.settings.control_table).month_spend(clock())
    assert 0 < value(registry, "gpuorch_gpu_month_spend_dollars") == pytest.approx(spend, abs=0.01)
