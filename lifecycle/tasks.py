"""The lifecycle's Celery side: the check task (control queue), its wiring from Settings, the submit trigger."""

from __future__ import annotations

import functools
import logging

from gpuorch.aws.clients import AwsClients
from gpuorch.celery_app import app
from gpuorch.metrics.lifecycle import lifecycle_metrics
from gpuorch.services import Services
from lifecycle.check import LifecycleCheck, StatusStore
from lifecycle.heartbeats import HeartbeatStore
from lifecycle.instances import EC2_CLIENT_CONFIG, InstancePool
from lifecycle.lock import Lease, default_owner
from lifecycle.model import Policy
from lifecycle.runs import RunLog
from lifecycle.trigger import CHECK_TASK

log = logging.getLogger(__name__)

# A heartbeat item outlives the staleness limit (3 missed beats) by far, then expires.
HEARTBEAT_TTL_S = 3600
# On-demand prices (us-east-1, per hour); a type not listed is billed at the g6e.2xlarge price.
HOURLY_USD = {"g6e.2xlarge": 2.24, "g6e.xlarge": 1.861, "g6.2xlarge": 0.978, "g5.2xlarge": 1.212}


def policy_from(services: Services) -> Policy:
    settings = services.settings
    return Policy(
        idle_stop_s=settings.idle_stop_seconds,
        min_instances=settings.min_instances,
        max_instances=settings.max_instances,
        backlog_per_instance=settings.backlog_per_instance,
        heartbeat_timeout_s=3 * settings.heartbeat_seconds,
        monthly_budget_usd=settings.monthly_budget_usd or None,
    )


def hourly_price(instance_type: str) -> float:
    return HOURLY_USD.get(instance_type, HOURLY_USD["g6e.2xlarge"])


@functools.lru_cache(maxsize=None)
def lifecycle_check(services: Services) -> LifecycleCheck:
    """The process's LifecycleCheck, built once from its services."""
    settings, aws = services.settings, services.aws
    table = settings.control_table
    # The pool retries EC2 throttling itself: its client must not retry (or retry capacity errors) too.
    ec2 = AwsClients(settings, EC2_CLIENT_CONFIG).ec2
    return LifecycleCheck(
        pool=InstancePool(ec2, settings.gpu_pool, fallback_types=settings.fallback_instance_types),
        heartbeats=HeartbeatStore(aws.dynamodb, table, ttl_s=HEARTBEAT_TTL_S),
        runs=RunLog(aws.dynamodb, table, prices=HOURLY_USD),
        lease=Lease(aws.dynamodb, table, "lifecycle", owner=default_owner(), ttl_s=2 * settings.lifecycle_check_seconds),
        status=StatusStore(aws.dynamodb, table),
        sqs=aws.sqs,
        queue_url=aws.queue_url(settings.gpu_queue),
        policy=policy_from(services),
        hourly_price=hourly_price,
        metrics=lifecycle_metrics(),
    )


@app.task(name=CHECK_TASK, ignore_result=True)
def check_gpu() -> None:
    """Start the GPU when work waits, stop it when idle (runs on the control worker, never the GPU queue)."""
    lifecycle_check(app.services).run()
