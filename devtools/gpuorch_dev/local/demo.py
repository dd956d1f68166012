"""`gpuorch-dev demo`: the local stack from a stopped GPU: a cold start (of the spot instance, or its on-demand
fallback), one job of each kind, the idle stop."""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import click
import requests
from tqdm import tqdm

from gpuorch.aws.clients import AwsClients
from gpuorch.aws.s3 import parse_s3_uri
from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch.settings import Settings
from gpuorch.tasks import qwen_image_edit, use_app
from gpuorch_dev.local.deployment import BOOT_DELAY_S, LocalDeployment, LocalOptions, local_deployment
from gpuorch_dev.local.paths import RUNS
from lifecycle.live.runs import RunLog

log = logging.getLogger(__name__)

JOB_DEADLINE_S = 300
IDLE_STOP_DEADLINE_S = 120
DEMO_OWNER = "demo"
# Short, so the demo shows the idle stop within seconds rather than minutes.
DEMO_IDLE_STOP_S = 10


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
    options = LocalOptions(owner=DEMO_OWNER, idle_stop_seconds=min(base.idle_stop_seconds, DEMO_IDLE_STOP_S),
                           step_seconds=step_seconds)
    with local_deployment(run_dir, base, options, echo) as deployment:
        for line in deployment.addresses():
            echo(line)
        echo(f"While the demo runs:\n  export GPUORCH_API_URL={deployment.api_url} "
             f"GPUORCH_API_KEY={deployment.settings.api_key}\n  gpuorch list")
        return submit_and_follow(deployment, output_dir, echo)


def submit_and_follow(deployment: LocalDeployment, output_dir: Path, echo: Callable[[str], None]) -> bool:
    settings, aws, pool = deployment.settings, deployment.aws, deployment.pool
    api = settings.api_base_url
    image_uri = deployment.image_uri

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
    echo(f"The GPU is stopped: the submissions asked for a lifecycle check, which starts the spot instance while its "
         f"price is under GPUORCH_SPOT_MAX_SHARE ({settings.spot_max_share:.0%}) of on-demand, else the on-demand one "
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
            for process in deployment.stack.processes:
                echo(f"--- {process.name} log (last lines) ---\n{process.tail(20)}")
    echo("Both jobs succeeded." if ok else "Not every job succeeded.")

    echo(f"Waiting for the idle GPU to stop (GPUORCH_IDLE_STOP_SECONDS={settings.idle_stop_seconds})...")
    stopped = wait_until(lambda: all(pool.get(gpu.instance_id).state == "stopped" for gpu in deployment.gpus),
                         IDLE_STOP_DEADLINE_S)
    for gpu in deployment.gpus:
        echo(f"GPU instance {gpu.describe()}: {pool.get(gpu.instance_id).state} after {gpu.agent.boots} boot(s)")
    # A spot run is priced at the spot price the lifecycle read (moto's is $0.00001/h).
    spend = RunLog(aws.dynamodb, settings.control_table).month_spend()
    echo(f"Billed this month: ${spend:.4f}" if stopped else "The GPU did not stop in time")
    return ok and stopped


def wait_until(condition: Callable[[], bool], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)  # polling EC2's state; bounded by the deadline
    return False
