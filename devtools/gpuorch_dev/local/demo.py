"""`gpuorch demo`: the local stack from a stopped GPU: a cold start, one job of each kind, the idle stop."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import click
import requests
from tqdm import tqdm

from gpuorch.access.keys import KeyStore
from gpuorch.aws.clients import AwsClients
from gpuorch.aws.s3 import S3Uri, parse_s3_uri
from gpuorch.provision import Provisioner
from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch_dev.local.agent import GpuHostAgent, local_gpu_host
from gpuorch_dev.local.stack import LocalStack, free_port, use_local_credentials
from gpuorch.settings import Settings, settings_env
from gpuorch_dev.local.paths import RUNS
from gpuorch.tasks import qwen_image_edit, use_app
from lifecycle.live.pool import InstancePool
from lifecycle.live.runs import RunLog

log = logging.getLogger(__name__)

SAMPLE_IMAGE = Path(__file__).resolve().parent / "sample-house.png"
JOB_DEADLINE_S = 300
BOOT_DELAY_S = 3.0
IDLE_STOP_DEADLINE_S = 120
DEMO_OWNER = "demo"


def local_settings(base: Settings, endpoint: str, comfyui_url: str, api_port: int,
                   metrics_ports: tuple[int, int] = (0, 0)) -> Settings:
    """The demo's settings: the caller's, pointed at the local moto server, emulator and API; the GPU and
    control workers serve /metrics on `metrics_ports` (free ones: the defaults may be taken on this machine)."""
    return dataclasses.replace(
        base,
        aws_endpoint_url=endpoint,
        comfyui_url=comfyui_url,
        api_base_url=f"http://127.0.0.1:{api_port}",
        gpu_metrics_port=metrics_ports[0],
        control_metrics_port=metrics_ports[1],
        receive_wait_seconds=min(base.receive_wait_seconds, 2),
        # Short, so the demo shows the idle stop within seconds rather than minutes.
        idle_stop_seconds=min(base.idle_stop_seconds, 10),
        lifecycle_check_seconds=min(base.lifecycle_check_seconds, 2),
        heartbeat_seconds=min(base.heartbeat_seconds, 2),
        # The demo's task.delay() job is the demo key's owner's, so the key follows it like the REST one.
        submit_owner=DEMO_OWNER,
    )


def with_flower_login(settings: Settings) -> tuple[Settings, str]:
    """The settings with a Flower login (a password generated for this run unless one is set), and how to say it."""
    if settings.flower_basic_auth:
        return settings, "the login in GPUORCH_FLOWER_BASIC_AUTH"
    # Flower refuses to start without a login; a fresh one per run leaves nothing guessable on loopback.
    password = secrets.token_urlsafe(18)
    return dataclasses.replace(settings, flower_basic_auth=f"ops:{password}"), f"user ops, password {password}"


def describe(record: dict) -> str:
    node = f" ({record['node']})" if record.get("node") and record["status"] == states.RUNNING else ""
    return f"{record['status']}{node}"


class ProgressDisplay:
    """Progress bars on a terminal; one line per change otherwise (logs, CI)."""

    def __init__(self, labels: list[str], echo: Callable[[str], None]):
        self.echo = echo
        self.last: dict[str, tuple[int, str]] = {}
        self.bars = None
        if sys.stdout.isatty():
            self.bars = {
                label: tqdm(total=100, desc=f"{label:16}", position=i, bar_format="{desc} {bar} {n:3d}% {postfix}")
                for i, label in enumerate(labels)
            }

    def show(self, label: str, record: dict) -> None:
        progress, text = int(record.get("progress", 0)), describe(record)
        if self.last.get(label) == (progress, text):
            return
        self.last[label] = (progress, text)
        if self.bars is None:
            self.echo(f"  {label:16} {progress:3d}%  {text}")
        else:
            self.bars[label].update(progress - self.bars[label].n)
            self.bars[label].set_postfix_str(text)

    def close(self) -> None:
        for bar in (self.bars or {}).values():
            bar.close()


def api_session(api_key: str) -> requests.Session:
    """A session sending the demo's API key."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    return session


def follow_jobs(api: str, job_ids: dict[str, str], deadline_s: float, echo: Callable[[str], None],
                session: requests.Session) -> dict[str, dict]:
    """Show each job's progress until all are terminal (or the deadline passes); returns their records."""
    display = ProgressDisplay(list(job_ids), echo)
    records: dict[str, dict] = {}
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            for label, job_id in job_ids.items():
                records[label] = session.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()
                display.show(label, records[label])
            if all(r["status"] in states.TERMINAL for r in records.values()):
                break
            time.sleep(0.25)  # polling the API; the loop is bounded by the deadline
    finally:
        display.close()
    return records


def download_outputs(aws: AwsClients, record: dict, target: Path) -> list[Path]:
    paths = []
    for output in record.get("outputs", []):
        uri = parse_s3_uri(output["uri"])
        path = target / record["job_id"] / output["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        aws.s3.download_file(uri.bucket, uri.key, str(path))
        paths.append(path)
    return paths


def run_demo(base: Settings, output_dir: Path, step_seconds: float, echo: Callable[[str], None] = click.echo) -> bool:
    """Start the local stack, run both workflows from a stopped GPU, write the outputs, watch the GPU stop.

    True if both jobs succeeded and the idle GPU was stopped.
    """
    run_dir = RUNS / datetime.now().strftime("%Y%m%d-%H%M%S")
    # This process talks to the moto server too (provisioning, delay(), downloads), never to a real account.
    use_local_credentials()
    with LocalStack(run_dir=run_dir) as stack:
        echo(f"Local stack logs: {run_dir}")
        endpoint = stack.start_moto()
        echo(f"moto server (SQS, SNS, DynamoDB, S3, EC2) at {endpoint}")
        api_port, comfyui_port = free_port(), free_port()
        settings = local_settings(base, endpoint, f"http://127.0.0.1:{comfyui_port}", api_port,
                                  metrics_ports=(free_port(), free_port()))
        settings, login = with_flower_login(dataclasses.replace(settings, flower_port=free_port()))
        aws = AwsClients(settings)
        echo("Provisioning:")
        Provisioner(aws, settings, report=lambda change: echo(f"  {change}")).run()
        key, token = KeyStore(aws.dynamodb, settings.key_table).create(DEMO_OWNER, name="gpuorch demo")
        settings = dataclasses.replace(settings, api_key=token)
        pool = InstancePool(aws.ec2, settings.gpu_pool)
        instance_id = pool.create_local_instance()
        echo(f"GPU instance {instance_id} (g6e.2xlarge on moto): {pool.get(instance_id).state}")

        stack.env = settings_env(settings)
        api_process, _control, _beat = stack.start_procfile(
            ["api", "control_worker", "beat"], {"GPUORCH_API_BIND": f"127.0.0.1:{api_port}"}
        )
        api = settings.api_base_url
        stack.wait_until_ready(api_process, lambda: requests.get(f"{api}/health", timeout=5).status_code == 200)
        echo(f"API at {api}; control worker and beat running (Procfile: api, control_worker, beat)")
        echo(f"Prometheus metrics: {api}/metrics, http://127.0.0.1:{settings.control_metrics_port}/metrics (control "
             f"worker), http://127.0.0.1:{settings.gpu_metrics_port}/metrics (GPU worker, once it runs)")
        echo(f"API key {key.key_id} of owner {DEMO_OWNER} (made with the key table, as `gpuorch keys create "
             f"--owner {DEMO_OWNER}` does); while the demo runs:\n"
             f"  export GPUORCH_API_URL={api} GPUORCH_API_KEY={token}\n"
             f"  gpuorch list    # or: curl -H \"Authorization: Bearer $GPUORCH_API_KEY\" {api}/api/v1/jobs")
        if settings.monitoring:
            [flower] = stack.start_procfile(["flower"])
            flower_url = f"http://127.0.0.1:{settings.flower_port}"
            stack.wait_until_ready(flower, lambda: requests.get(f"{flower_url}/healthcheck", timeout=5).ok)
            echo(f"Flower at {flower_url}/ ({login}; Procfile: flower)")
        # The instance's boot, played locally: once it runs, ComfyUI (the emulator) and the GPU worker start.
        host = local_gpu_host(stack, instance_id=instance_id, comfyui_port=comfyui_port, data_dir=run_dir / "comfyui",
                              model_files=settings.models.by_folder(), step_seconds=step_seconds)
        agent = GpuHostAgent(aws.ec2, instance_id, host, boot_delay_s=BOOT_DELAY_S)
        agent.start()
        try:
            return submit_and_follow(settings, aws, pool, instance_id, agent, output_dir, echo, stack)
        finally:
            agent.shutdown()


def submit_and_follow(settings: Settings, aws: AwsClients, pool: InstancePool, instance_id: str,
                      agent: GpuHostAgent, output_dir: Path, echo: Callable[[str], None], stack: LocalStack) -> bool:
    api = settings.api_base_url
    image_key = "inputs/samples/house.png"
    aws.s3.upload_file(str(SAMPLE_IMAGE), settings.bucket, image_key)
    image_uri = str(S3Uri(settings.bucket, image_key))

    session = api_session(settings.api_key)
    answer = session.post(
        f"{api}/api/v1/camera-angle/jobs", json={"image": image_uri, "move": "rotate_left", "degrees": 45}, timeout=30
    )
    answer.raise_for_status()
    camera_id = answer.json()["job_id"]
    echo(f"REST   POST /api/v1/camera-angle/jobs -> 202, job {camera_id}")

    use_app(create_celery_app(settings))  # the Python caller submits with the demo's settings
    result = qwen_image_edit.delay(prompt="Paint the house blue and add snow on the roof", images=[image_uri])
    echo(f"Python qwen_image_edit.delay(...) -> job {result.id}")
    echo(f"The GPU is stopped: the submissions asked for a lifecycle check, which starts it "
         f"(boot played as {BOOT_DELAY_S:.0f} s, then ComfyUI, the GPU worker and its warm-up).")

    records = follow_jobs(api, {"camera-angle": camera_id, "qwen-image-edit": result.id}, JOB_DEADLINE_S, echo,
                          session)
    ok = all(r["status"] == states.SUCCEEDED for r in records.values())
    if ok:
        echo(f"result.get() from the DynamoDB result backend: {result.get(timeout=30)}")
    for label, record in records.items():
        if record["status"] == states.SUCCEEDED:
            for path in download_outputs(aws, record, output_dir):
                echo(f"{label}: {path}")
        else:
            echo(f"{label}: {record['status']}: {record.get('error') or 'did not finish in time'}")
            for process in stack.processes:
                echo(f"--- {process.name} log (last lines) ---\n{process.tail(20)}")
    echo("Both jobs succeeded." if ok else "Not every job succeeded.")

    echo(f"Waiting for the idle GPU to stop (GPUORCH_IDLE_STOP_SECONDS={settings.idle_stop_seconds})...")
    stopped = wait_until(lambda: pool.get(instance_id).state == "stopped", IDLE_STOP_DEADLINE_S)
    spend = RunLog(aws.dynamodb, settings.control_table).month_spend()
    echo(f"GPU instance {instance_id}: {pool.get(instance_id).state} after {agent.boots} boot(s); "
         f"billed this month: ${spend:.4f}" if stopped else f"GPU instance {instance_id} did not stop in time")
    return ok and stopped


def wait_until(condition: Callable[[], bool], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)  # polling EC2's state; bounded by the deadline
    return False
