"""How busy the GPU stays: a backlog of jobs through the pipelined GPU worker, beside a strictly sequential one.

The ComfyUI emulator reports the wall time its executor spent running prompts. For a backlog of N
camera-angle jobs of about 1.0 s of emulated GPU time each, the share of wall time the executor was busy
(from the first job's start to the last one's end) is measured twice in one run, on the same machine:
- the GPU worker as shipped (GPUORCH_GPU_PIPELINE_DEPTH jobs in flight: the next one's input is fetched,
  uploaded and queued in ComfyUI while one runs, and outputs upload meanwhile);
- a strictly sequential worker (depth 1: fetch, submit, wait, download, upload, then the next), which is
  what the replaced SQS adapter did.
Last line: `gpu busy <pct> sequential <pct>` (target: at least 97%). `--quick` is a short run that
tests/bench/test_benches.py makes, so the bench keeps working; its figures mean little.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuorch.aws.clients import AwsClients  # noqa: E402
from gpuorch.celery.app import create_celery_app  # noqa: E402
from gpuorch.provision import Provisioner  # noqa: E402
from gpuorch.settings import Settings, settings_env  # noqa: E402
from gpuorch.tasks import camera_angle, use_app  # noqa: E402
from gpuorch.workflows import load_workflows  # noqa: E402
from gpuorch.workflows.models import comfyui_folders  # noqa: E402
from gpuorch_dev.local.paths import SAMPLE_IMAGE  # noqa: E402
from gpuorch_dev.local.stack import LocalStack, StackError, use_local_credentials  # noqa: E402

SAMPLER_STEPS = 8  # the camera-angle workflow's KSampler steps


def stats(comfyui_url: str) -> dict:
    return requests.get(f"{comfyui_url}/emulator/stats", timeout=10).json()


def measure(stack: LocalStack, settings: Settings, comfyui_url: str, jobs: int, depth: int, image_uri: str) -> float:
    """Queue `jobs` jobs, start a GPU worker of `depth`, and return the executor's busy share over the backlog."""
    for _ in range(jobs):
        camera_angle.delay(image=image_uri, move="rotate_left", degrees=45)
    [worker] = stack.start_procfile(["gpu_worker"], {"GPUORCH_GPU_PIPELINE_DEPTH": str(depth)})
    stack.wait_until_ready(worker, lambda: "GPU worker ready" in worker.output(), timeout=120)
    done_before = stats(comfyui_url)["prompts_executed"]
    deadline = time.monotonic() + jobs * 10
    first = None
    while time.monotonic() < deadline:
        now = stats(comfyui_url)
        if first is None and (now["running"] or now["prompts_executed"] > done_before):
            first = now
        if now["prompts_executed"] >= done_before + jobs:
            worker.stop()
            busy = now["busy_s"] - first["busy_s"]
            wall = now["uptime_s"] - first["uptime_s"]
            print(f"depth={depth} jobs={jobs} wall={wall:.2f} s busy={busy:.2f} s share={100 * busy / wall:.1f}%")
            return busy / wall
        time.sleep(0.01)  # sampling the emulator's counters; bounded by the deadline
    raise StackError(f"the backlog did not finish in time:\n{worker.tail()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--gpu-seconds", type=float, default=1.0, help="Emulated sampler time per job.")
    parser.add_argument("--quick", action="store_true",
                        help="4 jobs of 0.2 s: checks the bench runs (make test), measures nothing")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.gpu_seconds = 4, 0.2
    use_local_credentials()
    shipped = Settings()

    with tempfile.TemporaryDirectory() as tmp, LocalStack(run_dir=Path(tmp)) as stack:
        endpoint = stack.start_moto()
        comfyui_url = stack.start_emulator(Path(tmp) / "comfyui",
                                           comfyui_folders(load_workflows(shipped.workflows_dir), shipped.models),
                                           args.gpu_seconds / SAMPLER_STEPS)
        # The worker stands for one GPU instance (off EC2 it must be told which); no /metrics on fixed ports.
        settings = dataclasses.replace(shipped, aws_endpoint_url=endpoint, comfyui_url=comfyui_url,
                                       receive_wait_seconds=1, instance_id="i-bench-gpu", gpu_metrics_port=0,
                                       control_metrics_port=0)
        aws = AwsClients(settings)
        Provisioner(aws, settings).run()
        aws.s3.upload_file(str(SAMPLE_IMAGE), settings.bucket, "inputs/house.png")
        image_uri = f"s3://{settings.bucket}/inputs/house.png"
        use_app(create_celery_app(settings))  # camera_angle.delay() submits to this stack
        stack.env = settings_env(settings)

        pipelined = measure(stack, settings, comfyui_url, args.jobs, shipped.gpu_pipeline_depth, image_uri)
        sequential = measure(stack, settings, comfyui_url, args.jobs, 1, image_uri)
    print(f"gpu busy {100 * pipelined:.1f} sequential {100 * sequential:.1f}")  # once the stack has stopped
    return 0


if __name__ == "__main__":
    sys.exit(main())
