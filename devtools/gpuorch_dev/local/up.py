"""`gpuorch-dev up`: the local stack kept running to try by hand, until Ctrl-C or SIGTERM stops every process."""

from __future__ import annotations

import dataclasses
import json
import shlex
import signal
from pathlib import Path
from typing import Callable

from gpuorch.settings import Settings
from gpuorch_dev.local.deployment import LocalDeployment, LocalOptions, comfyui_problems, local_deployment

READY_LINE = "The local stack is up. Ctrl-C (or SIGTERM) stops everything it started."
STOPPED_LINE = "Stopped every process the local stack started."
# Exit status when an existing ComfyUI fails the GPU worker's start-up checks (the worker's own refusal status).
REFUSED = 2


def submit_examples(deployment: LocalDeployment) -> list[str]:
    """How to submit a camera-angle job of the sample image: with curl, and with `gpuorch submit`."""
    api, key, image = deployment.api_url, deployment.settings.api_key, deployment.image_uri
    body = json.dumps({"image": image, "move": "rotate_left", "degrees": 45})
    return [
        f"curl -s -XPOST {api}/api/v1/camera-angle/jobs -H {shlex.quote(f'Authorization: Bearer {key}')} "
        f"-H 'content-type: application/json' -d {shlex.quote(body)}",
        f"export GPUORCH_API_URL={api} GPUORCH_API_KEY={key}",
        f"gpuorch submit camera-angle -p move=rotate_left -p degrees=45 -i {image} --wait",
    ]


def refusal(url: str, problems: list[str]) -> list[str]:
    """What to tell the user when an existing ComfyUI would make the GPU worker refuse to start."""
    return [
        f"The ComfyUI at {url} cannot run the workflows: the GPU worker would refuse to start with",
        *(f"  {problem}" for problem in problems),
        "Model file names are settings (GPUORCH_DIFFUSION_MODEL, GPUORCH_TEXT_ENCODER, GPUORCH_VAE, "
        "GPUORCH_LIGHTNING_4STEP_LORA, GPUORCH_LIGHTNING_8STEP_LORA, GPUORCH_CAMERA_LORA): set them to the files that "
        "server holds, or put the files on it. GPUORCH_WORKFLOWS_DIR chooses other workflows; --warmup-workflow '' "
        "skips the warm-up. Nothing was started.",
    ]


def _stop_on_signal(signum: int, _frame) -> None:
    # Once: further signals are ignored, so a second Ctrl-C cannot cut the stopping short and leave processes behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_up(base: Settings, options: LocalOptions, run_dir: Path, echo: Callable[[str], None]) -> int:
    """Start the local stack and keep it up until interrupted; 0 once everything stopped, 2 when an existing
    ComfyUI would make the GPU worker refuse to start (then nothing is started)."""
    if options.comfyui_url:
        checked = dataclasses.replace(base, comfyui_url=options.comfyui_url)
        if options.warmup_workflow is not None:
            checked = dataclasses.replace(checked, warmup_workflow=options.warmup_workflow)
        echo(f"Checking the ComfyUI at {options.comfyui_url} as the GPU worker will at its start...")
        problems = comfyui_problems(checked)
        if problems:
            for line in refusal(options.comfyui_url, problems):
                echo(line)
            return REFUSED
        echo(f"The ComfyUI at {options.comfyui_url} passes: every workflow, model files included.")
    # SIGTERM as Ctrl-C: either one unwinds through the deployment's `with`, which stops every process it started.
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    try:
        with local_deployment(run_dir, base, options, echo) as deployment:
            comfyui = options.comfyui_url or "the ComfyUI emulator"
            echo(f"The GPU instances are stopped: a submission starts the spot one (or, when spot is dear, refused or "
                 f"interrupted, the on-demand one); its boot starts {comfyui} and the GPU worker (idle "
                 f"{deployment.settings.idle_stop_seconds} s, it stops again).")
            for line in deployment.addresses():
                echo(line)
            echo("Submit a job:")
            for line in submit_examples(deployment):
                echo(f"  {line}")
            echo(READY_LINE)
            while True:
                signal.pause()  # the handler above ends this wait by raising
    except KeyboardInterrupt:
        pass
    echo(STOPPED_LINE)
    return 0
