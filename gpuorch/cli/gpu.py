"""`gpuorch gpu status|start|stop`: the pool's GPU instances, directly through EC2."""

from __future__ import annotations

import json
import sys

import click
from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.aws.clients import AwsClients
from gpuorch.clock import utc_now
from gpuorch.errors import Conflict, Unavailable
from gpuorch.settings import Settings
from lifecycle.decision import budget_refusal
from lifecycle.live.costs import run_log_for
from lifecycle.live.pool import EC2_CLIENT_CONFIG, CapacityError, InstancePool
from lifecycle.live.refusals import RefusalStore
from lifecycle.prices import region_prices


def _pool(settings: Settings) -> InstancePool:
    return InstancePool(AwsClients(settings, EC2_CLIENT_CONFIG).ec2, settings.gpu_pool,
                        fallback_types=settings.fallback_instance_types)


def _run(action):
    """Run an EC2 action; exit 1 when EC2 refuses it (no such instance, no capacity), 2 when AWS cannot be reached."""
    try:
        return action()
    except (Conflict, CapacityError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (Unavailable, BotoCoreError, ClientError) as exc:
        click.echo(f"error: EC2 did not answer: {exc}", err=True)
        sys.exit(2)


@click.group()
def gpu() -> None:
    """The GPU instances of the pool (tag gpuorch:pool=GPUORCH_GPU_POOL)."""


@gpu.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per instance, in a list.")
@click.pass_obj
def gpu_status(settings: Settings, as_json: bool) -> None:
    """Each instance of the pool: id, state, type, market and when it was launched."""
    instances = _run(_pool(settings).describe)
    rows = [{"instance_id": i.instance_id, "state": i.state, "instance_type": i.instance_type,
             "market": getattr(i, "market", "on-demand"),
             "launched_at": i.launched_at.isoformat() if i.launched_at else None} for i in instances]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no instance is tagged gpuorch:pool={settings.gpu_pool}")
    else:
        for row in rows:
            click.echo(f"{row['instance_id']:22} {row['state']:13} {row['instance_type']:14} {row['market']:9} "
                       f"{row['launched_at'] or '-'}")


def _over_budget(settings: Settings, instance_type: str) -> str | None:
    """Why starting an instance of `instance_type` now would pass the monthly budget (the lifecycle's own rule)."""
    if not settings.monthly_budget_usd:
        return None
    spend = run_log_for(AwsClients(settings).dynamodb, settings.control_table, settings.region).month_spend(utc_now())
    return budget_refusal(spend, region_prices(settings.region).hourly(instance_type), settings.monthly_budget_usd)


@gpu.command("start")
@click.argument("instance_id")
@click.option("--over-budget", is_flag=True,
              help="Start it even when this month's GPU spend plus an hour would pass GPUORCH_MONTHLY_BUDGET_USD.")
@click.pass_obj
def gpu_start(settings: Settings, instance_id: str, over_budget: bool) -> None:
    """Start an instance of the pool (nothing happens if it is running or pending).

    An instance held because it could not serve (its worker refused to start, or it was not ready within its
    boot grace) is released: the lifecycle may start it again, and its worker checks again. The monthly budget
    holds as for the lifecycle's starts: exit 1 naming it, unless --over-budget.
    """
    pool = _pool(settings)
    instance = _run(lambda: pool.get(instance_id))
    refusal = None if over_budget or instance.state != "stopped" else _run(
        lambda: _over_budget(settings, instance.instance_type))
    if refusal:
        click.echo(f"error: {instance_id}: {refusal}; --over-budget to start it anyway", err=True)
        sys.exit(1)
    aws = AwsClients(settings)
    released = _run(lambda: RefusalStore(aws.dynamodb, settings.control_table,
                                         instance_arn=aws.instance_arn).release(instance_id))
    if released is not None:
        click.echo(f"{instance_id}: released from its hold ({released})")
    click.echo(f"{instance_id}: {_run(lambda: pool.start(instance_id))}")


@gpu.command("stop")
@click.argument("instance_id")
@click.pass_obj
def gpu_stop(settings: Settings, instance_id: str) -> None:
    """Stop an instance of the pool now, whatever runs on it (the lifecycle stops idle ones by itself)."""
    click.echo(f"{instance_id}: {_run(lambda: _pool(settings).stop(instance_id))}")
