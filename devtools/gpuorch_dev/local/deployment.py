"""The local stack brought up as a deployment: `gpuorch-dev demo` and `gpuorch-dev up` both start it this way.

A moto server, the queues, tables and bucket provisioned, a user and an operator API key, two stopped GPU instances
on moto (a persistent spot one that stops on interruption, and its on-demand fallback), the API, the control worker,
beat and Flower from the Procfile, and for each instance a GPU host agent that plays its boot (ComfyUI, the emulator
or an existing ComfyUI, and the GPU worker once the lifecycle starts it) and serves its instance metadata, where a
spot interruption notice can be raised.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from gpuorch.access.keys import OPERATOR, USER, KeyStore
from gpuorch.aws.clients import AwsClients
from gpuorch.provision import Provisioner
from gpuorch.services import Services
from gpuorch.settings import Settings, settings_env
from gpuorch_dev.local.agent import EmulatedComfyUi, GpuHostAgent, local_gpu_instance
from gpuorch_dev.local.instances import create_local_instance
from gpuorch_dev.local.metadata import RAISE_PATH
from gpuorch_dev.local.paths import SAMPLE_IMAGE
from gpuorch_dev.local.stack import LocalStack, free_port, use_local_credentials
from lifecycle.live.pool import InstancePool
from lifecycle.model import ON_DEMAND, SPOT
from workers.checks import template_problems

SAMPLE_KEY = "inputs/samples/house.png"
# How long the local instance's boot lasts before ComfyUI and the GPU worker start.
BOOT_DELAY_S = 3.0
OPERATOR_OWNER = "ops"


@dataclass(frozen=True)
class LocalOptions:
    """What differs between local stacks: whose jobs, how soon an idle GPU stops, and which ComfyUI serves."""

    #: Owner of the user key, and of the jobs this process submits with task.delay().
    owner: str
    idle_stop_seconds: int
    #: The emulator's time per sampler step.
    step_seconds: float = 0.25
    #: An existing ComfyUI the GPU worker drives instead of the emulator; empty: the emulator.
    comfyui_url: str = ""
    #: The GPU worker's warm-up workflow ("" for none); None: GPUORCH_WARMUP_WORKFLOW's.
    warmup_workflow: str | None = None
    #: The API's port; 0: a free one.
    api_port: int = 0


@dataclass(frozen=True)
class LocalGpu:
    """One GPU instance of the local pool: its market, and the agent playing it (its metadata at agent.metadata)."""

    instance_id: str
    market: str
    agent: GpuHostAgent

    def describe(self) -> str:
        return f"{self.instance_id} ({self.market})"


@dataclass
class LocalDeployment:
    """A running local stack and how to reach it."""

    stack: LocalStack
    settings: Settings  # with the user key as GPUORCH_API_KEY, as the CLI would have it
    aws: AwsClients
    pool: InstancePool
    gpus: list[LocalGpu]  # the spot instance, then its on-demand fallback
    operator_key: str
    flower_url: str | None
    flower_login: str
    image_uri: str

    @property
    def api_url(self) -> str:
        return self.settings.api_base_url

    def addresses(self) -> list[str]:
        """Where everything is, one `label: value` line each."""
        settings = self.settings
        metrics = (f"{self.api_url}/metrics (operator key), "
                   f"http://127.0.0.1:{settings.control_metrics_port}/metrics (control worker), "
                   f"http://127.0.0.1:{settings.gpu_metrics_port}/metrics (GPU worker, while it runs)")
        lines = [
            f"API: {self.api_url} (the OpenAPI page: {self.api_url}/docs)",
            f"User key (owner {settings.submit_owner}): {settings.api_key}",
            f"Operator key (owner {OPERATOR_OWNER}): {self.operator_key}",
        ]
        if self.flower_url:
            lines.append(f"Flower: {self.flower_url}/ ({self.flower_login})")
        lines += [f"Prometheus metrics: {metrics}", f"Sample image: {self.image_uri}"]
        for gpu in self.gpus:
            lines.append(f"GPU instance {gpu.describe()}: instance metadata at {gpu.agent.metadata.url}")
            if gpu.market == SPOT:
                lines.append(f"  Raise its spot interruption notice (EC2 stops it 120 s later): "
                             f"curl -s -XPOST '{gpu.agent.metadata.url}{RAISE_PATH}?seconds=120'")
        return lines


def local_settings(base: Settings, options: LocalOptions, endpoint: str, comfyui_url: str, api_port: int) -> Settings:
    """The caller's settings pointed at the local moto server, ComfyUI and API; the GPU and control workers serve
    /metrics on free ports (the defaults may be taken on this machine)."""
    settings = dataclasses.replace(
        base,
        aws_endpoint_url=endpoint,
        comfyui_url=comfyui_url,
        api_base_url=f"http://127.0.0.1:{api_port}",
        gpu_metrics_port=free_port(),
        control_metrics_port=free_port(),
        flower_port=free_port(),
        receive_wait_seconds=min(base.receive_wait_seconds, 2),
        idle_stop_seconds=options.idle_stop_seconds,
        lifecycle_check_seconds=min(base.lifecycle_check_seconds, 2),
        heartbeat_seconds=min(base.heartbeat_seconds, 2),
        # Jobs this process submits with task.delay() are the user key's owner's, so the key sees them as REST ones.
        submit_owner=options.owner,
    )
    if options.warmup_workflow is not None:
        settings = dataclasses.replace(settings, warmup_workflow=options.warmup_workflow)
    return settings


def with_flower_login(settings: Settings) -> tuple[Settings, str]:
    """The settings with a Flower login (a password generated for this run unless one is set), and how to say it."""
    if settings.flower_basic_auth:
        return settings, "the login in GPUORCH_FLOWER_BASIC_AUTH"
    # Flower refuses to start without a login; a fresh one per run leaves nothing guessable on loopback.
    password = secrets.token_urlsafe(18)
    return dataclasses.replace(settings, flower_basic_auth=f"ops:{password}"), f"user ops, password {password}"


def comfyui_problems(settings: Settings) -> list[str]:
    """Why the GPU worker would refuse to start on the ComfyUI at GPUORCH_COMFYUI_URL (empty: it would not).

    The worker's own start-up checks that need no AWS: every template against the server's live /object_info,
    the configured model files included, and a warm-up workflow that exists.
    """
    services = Services(settings)
    problems = template_problems(services)
    if not problems and settings.warmup_workflow:
        try:
            services.workflows.get(settings.warmup_workflow)
        except KeyError:
            problems.append(f"GPUORCH_WARMUP_WORKFLOW names no workflow: {settings.warmup_workflow!r}")
    return problems


@contextmanager
def local_deployment(run_dir: Path, base: Settings, options: LocalOptions,
                     echo: Callable[[str], None]) -> Iterator[LocalDeployment]:
    """Bring the local stack up; leaving the block stops every process it started."""
    # This process talks to the moto server too (provisioning, keys, task.delay()), never to a real account.
    use_local_credentials()
    with LocalStack(run_dir=run_dir) as stack:
        echo(f"Local stack logs: {run_dir}")
        endpoint = stack.start_moto()
        echo(f"moto server (SQS, SNS, DynamoDB, S3, EC2) at {endpoint}")
        comfyui_port = free_port()
        comfyui_url = options.comfyui_url or f"http://127.0.0.1:{comfyui_port}"
        api_port = options.api_port or free_port()
        settings = local_settings(base, options, endpoint, comfyui_url, api_port)
        settings, login = with_flower_login(settings)
        aws = AwsClients(settings)
        echo("Provisioning:")
        Provisioner(aws, settings, report=lambda change: echo(f"  {change}")).run()
        keys = KeyStore(aws.dynamodb, settings.key_table)
        _user, user_token = keys.create(options.owner, role=USER, name="local stack")
        _operator, operator_token = keys.create(OPERATOR_OWNER, role=OPERATOR, name="local stack")
        settings = dataclasses.replace(settings, api_key=user_token)
        aws.s3.upload_file(str(SAMPLE_IMAGE), settings.bucket, SAMPLE_KEY)
        pool = InstancePool(aws.ec2, settings.gpu_pool)
        # As DEPLOYMENT.md sets a pool up: the spot instance the lifecycle prefers, and the on-demand fallback.
        markets = {market: create_local_instance(aws.ec2, settings.gpu_pool, market=market)
                   for market in (SPOT, ON_DEMAND)}
        echo(f"GPU instances (g6e.2xlarge on moto), stopped: {markets[SPOT]} (spot: a persistent request that stops "
             f"on interruption) and {markets[ON_DEMAND]} (on-demand, its fallback)")

        stack.env = settings_env(settings)
        api_process, _control, _beat = stack.start_procfile(
            ["api", "control_worker", "beat"], {"GPUORCH_API_BIND": f"127.0.0.1:{api_port}"}
        )
        api = settings.api_base_url
        stack.wait_until_ready(api_process, lambda: requests.get(f"{api}/health", timeout=5).status_code == 200)
        echo("API, control worker and beat running (Procfile: api, control_worker, beat)")
        flower_url = None
        if settings.monitoring:
            [flower] = stack.start_procfile(["flower"])
            flower_url = f"http://127.0.0.1:{settings.flower_port}"
            stack.wait_until_ready(flower, lambda: requests.get(f"{flower_url}/healthcheck", timeout=5).ok)
            echo("Flower running (Procfile: flower)")
        # Each instance's boot, played locally: once it runs, ComfyUI (its own emulator, unless an existing ComfyUI
        # serves) and the GPU worker.
        gpus = []
        for market, instance_id in markets.items():
            emulator = None if options.comfyui_url else EmulatedComfyUi(
                comfyui_port if market == SPOT else free_port(), run_dir / f"comfyui-{market}",
                settings.models.by_folder(), options.step_seconds)
            gpus.append(LocalGpu(instance_id, market, local_gpu_instance(
                stack, aws.ec2, instance_id=instance_id, market=market, emulator=emulator, boot_delay_s=BOOT_DELAY_S)))
        for gpu in gpus:
            gpu.agent.start()
        try:
            yield LocalDeployment(stack, settings, aws, pool, gpus, operator_token, flower_url, login,
                                  f"s3://{settings.bucket}/{SAMPLE_KEY}")
        finally:
            for gpu in gpus:
                gpu.agent.shutdown()
