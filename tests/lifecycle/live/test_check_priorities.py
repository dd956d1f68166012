"""A lifecycle check on the moto server reads the low-priority queue and the job table: low-priority jobs start no
instance, and neither do the messages of jobs that expired while queued; a job that may still run does."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from gpuorch.jobs import states
from gpuorch.jobs.expiry import expire_overdue
from gpuorch.jobs.options import JobOptions
from lifecycle.live.check import LifecycleCheck, StatusStore
from lifecycle.live.heartbeats import HeartbeatStore
from lifecycle.live.lease import Lease
from lifecycle.live.pool import InstancePool
from lifecycle.live.runs import RunLog
from lifecycle.model import Policy
from tests.lifecycle.live.conftest import Clock


def make_check(provisioned, ec2, pool_name, clock) -> LifecycleCheck:
    settings, aws = provisioned.settings, provisioned.aws
    table = settings.control_table
    return LifecycleCheck(
        pool=InstancePool(ec2, pool_name),
        heartbeats=HeartbeatStore(aws.dynamodb, table, ttl_s=3600, clock=clock),
        runs=RunLog(aws.dynamodb, table, clock=clock),
        lease=Lease(aws.dynamodb, table, "lifecycle", owner="test", ttl_s=60, clock=clock),
        status=StatusStore(aws.dynamodb, table),
        sqs=aws.sqs,
        queue_url=aws.queue_url(settings.gpu_queue),
        low_queue_url=aws.queue_url(settings.gpu_low_queue),
        startable=provisioned.jobs.count_startable,
        policy=Policy(idle_stop_s=60),
        hourly_price=lambda _type: 2.24,
        clock=clock,
    )


def test_only_jobs_that_may_still_run_start_an_instance(provisioned, ec2, pool_name, stopped_instance):
    clock = Clock(datetime.now(timezone.utc))
    check = make_check(provisioned, ec2, pool_name, clock)
    aws, settings, jobs = provisioned.aws, provisioned.settings, provisioned.jobs
    for n in range(3):
        jobs.create(f"low-{n}", "camera-angle", {}, source="api", options=JobOptions(priority="low"))
        aws.sqs.send_message(QueueUrl=aws.queue_url(settings.gpu_low_queue), MessageBody=f"low-{n}")
    jobs.create("late", "camera-angle", {}, source="api",
                options=JobOptions(deadline=clock() + timedelta(seconds=30)))
    aws.sqs.send_message(QueueUrl=aws.queue_url(settings.gpu_queue), MessageBody="late")

    clock.advance(60)  # past the normal job's deadline: the sweep expires it, its message stays visible
    assert expire_overdue(jobs, clock()) == ["late"]
    assert jobs.get("late").status == states.EXPIRED
    idle = check.run()

    assert (idle.low_visible, idle.queue_visible, idle.waiting, idle.starts) == (3, 1, 0, ())
    assert "1 visible message(s) of jobs that expired or were cancelled" in str(idle)

    jobs.create("fresh", "camera-angle", {}, source="api")
    aws.sqs.send_message(QueueUrl=aws.queue_url(settings.gpu_queue), MessageBody="fresh")
    started = check.run()

    assert started.starts == (stopped_instance,) and started.waiting == 1
    status = StatusStore(aws.dynamodb, settings.control_table).read()
    assert [i["state"] for i in status.instances] == ["running"]


def test_the_count_of_startable_jobs_reads_priority_deadline_and_status(provisioned):
    jobs, now = provisioned.jobs, datetime.now(timezone.utc)
    jobs.create("normal", "camera-angle", {}, source="api")
    jobs.create("low", "camera-angle", {}, source="api", options=JobOptions(priority="low"))
    jobs.create("soon", "camera-angle", {}, source="api", options=JobOptions(deadline=now + timedelta(seconds=5)))
    jobs.create("running", "camera-angle", {}, source="api")
    jobs.transition("running", states.RUNNING)
    jobs.create("done", "camera-angle", {}, source="api")
    jobs.transition("done", states.CANCELLED)

    assert jobs.count_startable(now) == 3  # normal, soon, running
    assert jobs.count_startable(now + timedelta(seconds=10)) == 2  # soon is overdue
    assert dataclasses.replace(jobs.get("soon"), status=states.QUEUED).overdue(now + timedelta(seconds=10))
