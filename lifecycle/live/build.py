"""The live lifecycle check of one process, built from its settings and AWS clients."""

from __future__ import annotations

import functools
import logging

from gpuorch.aws.clients import AwsClients
from gpuorch.errors import ConfigurationError
from gpuorch.services import Services
from gpuorch.settings import Settings
from lifecycle.cost_model import ColdStart, cold_start_of
from lifecycle.learning import Economics
from lifecycle.live.check import LifecycleCheck, StatusStore
from lifecycle.live.heartbeats import HEARTBEAT_TTL_S, HeartbeatStore
from lifecycle.live.lease import Lease, default_owner
from lifecycle.live.market import MarketMemory, SpotPrices
from lifecycle.live.metrics import lifecycle_metrics
from lifecycle.live.planner import Planner, planner_for
from lifecycle.live.pool import EC2_CLIENT_CONFIG, InstancePool
from lifecycle.live.refusals import RefusalStore, configuration_parts, fingerprint
from lifecycle.live.runs import RunLog
from lifecycle.model import Policy, stale_after_s
from lifecycle.prices import region_prices
from lifecycle.schedule import ScheduleError, parse_windows

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> Policy:
    return Policy(
        idle_stop_s=settings.idle_stop_seconds,
        min_instances=settings.min_instances,
        max_instances=settings.max_instances,
        backlog_per_instance=settings.backlog_per_instance,
        heartbeat_timeout_s=stale_after_s(settings.heartbeat_seconds),
        monthly_budget_usd=settings.monthly_budget_usd or None,
        # The boot grace /health allows a booting instance is the one the lifecycle allows before it stops it.
        boot_grace_s=settings.health_boot_grace_seconds,
        spot_max_share=settings.spot_max_share,
        spot_hold_s=settings.spot_hold_seconds,
    )


def deployment_cold_start(settings: Settings, services: Services) -> ColdStart:
    """The cold start of this deployment: its workflows' declared model files from its model store; the cost
    model's default when the workflows cannot be read (the worker's own check says why)."""
    try:
        files = [(model.name, model.bytes) for workflow in services.workflows for model in workflow.models]
    except ConfigurationError:
        files = []
    return cold_start_of(files, settings.models_store)


def planner_from(settings: Settings, services: Services) -> Planner:
    """The policy of each check, as GPUORCH_LIFECYCLE_POLICY and GPUORCH_WARM_WINDOWS set it; the learned one weighs
    this deployment's cold start, and windows open that much early."""
    try:
        windows = parse_windows(settings.warm_windows)
    except ScheduleError as exc:
        raise ConfigurationError(f"GPUORCH_WARM_WINDOWS: {exc}") from None
    cold = deployment_cold_start(settings, services)
    economics = Economics(region_prices(settings.region).hourly(settings.gpu_instance_type), cold.billed_s,
                          cold.total_s,
                          wait_usd_per_s=settings.wait_value_usd_per_hour / 3600.0)
    return planner_for(settings.lifecycle_policy, policy_from(settings), jobs=lambda: services.jobs,
                       economics=economics, windows=windows, lead_s=cold.total_s)


def configuration_of(services: Services) -> str:
    """The lifecycle's configuration fingerprint, held refusals are kept against; read once per process, so a
    changed setting or workflow counts once the control worker restarts with it. Empty when the workflows cannot
    be read: holds are then kept, but not marked."""
    try:
        return fingerprint(configuration_parts(services.settings, services.workflows))
    except ConfigurationError as exc:
        log.error("lifecycle: no configuration fingerprint, holds are kept unmarked: %s", exc)
        return ""


@functools.lru_cache(maxsize=None)
def lifecycle_check(services: Services) -> LifecycleCheck:
    """The process's LifecycleCheck, built once from its services."""
    settings, aws = services.settings, services.aws
    table = settings.control_table
    # The pool retries EC2 throttling itself: its client must not retry (or retry capacity errors) too.
    ec2 = AwsClients(settings, EC2_CLIENT_CONFIG).ec2
    prices = region_prices(settings.region)
    log.info("lifecycle: %s", prices.describe())
    return LifecycleCheck(
        pool=InstancePool(ec2, settings.gpu_pool, fallback_types=settings.fallback_instance_types),
        heartbeats=HeartbeatStore(aws.dynamodb, table, ttl_s=HEARTBEAT_TTL_S),
        runs=RunLog(aws.dynamodb, table, prices=prices.usd_per_hour),
        lease=Lease(aws.dynamodb, table, "lifecycle", owner=default_owner(), ttl_s=2 * settings.lifecycle_check_seconds),
        status=StatusStore(aws.dynamodb, table),
        sqs=aws.sqs,
        queue_url=aws.queue_url(settings.gpu_queue),
        low_queue_url=aws.queue_url(settings.gpu_low_queue),
        startable=services.jobs.count_startable,
        policy=policy_from(settings),
        hourly_price=prices.hourly,
        metrics=lifecycle_metrics(),
        refusals=RefusalStore(aws.dynamodb, table, instance_arn=aws.instance_arn),
        configuration=configuration_of(services),
        spot_prices=SpotPrices(ec2),
        market=MarketMemory(aws.dynamodb, table),
        planner=planner_from(settings, services),
    )
