"""The `gpuorch-dev` command: the local stack on loopback (moto, the ComfyUI emulator, every gpuorch process)."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from gpuorch.logs import configure_logging
from gpuorch.settings import Settings, SettingsError

# Owner of the user key `gpuorch-dev up` prints, and of the jobs submitted with it.
LOCAL_OWNER = "local"


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """gpuorch's development tools: the local stack and its ComfyUI emulator."""
    try:
        ctx.obj = Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging("WARNING" if ctx.obj.log_level.upper() == "INFO" else ctx.obj.log_level, "text")


@main.command()
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"),
              show_default=True, help="Folder the output images are written to.")
@click.option("--step-seconds", type=float, default=0.25, show_default=True,
              help="Emulated GPU time per sampler step.")
@click.pass_obj
def demo(settings: Settings, output_dir: Path, step_seconds: float) -> None:
    """Start the local stack, run one job of each workflow, write the outputs, stop everything."""
    from gpuorch_dev.local.demo import run_demo

    ok = run_demo(settings, output_dir.resolve(), step_seconds)
    sys.exit(0 if ok else 1)


@main.command()
@click.option("--comfyui-url", default="", metavar="URL",
              help="An existing ComfyUI (a GPU workstation's) for the GPU worker to drive instead of the emulator; "
                   "checked first as the worker checks it at its start.")
@click.option("--warmup-workflow", default=None, metavar="NAME",
              help="The GPU worker's warm-up workflow; '' for none. Default: GPUORCH_WARMUP_WORKFLOW.")
@click.option("--idle-stop-seconds", type=click.IntRange(1), default=60, show_default=True,
              help="How long the GPU instance stays idle before the lifecycle stops it.")
@click.option("--api-port", type=click.IntRange(0, 65535), default=0,
              help="The API's port on 127.0.0.1; 0 (the default): a free one.")
@click.option("--step-seconds", type=float, default=0.25, show_default=True,
              help="Emulated GPU time per sampler step (the emulator only).")
@click.option("--logs-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of every process's log (and the emulator's files). Default: .local-stack/<start time>.")
@click.pass_obj
def up(settings: Settings, comfyui_url: str, warmup_workflow: str | None, idle_stop_seconds: int, api_port: int,
       step_seconds: float, logs_dir: Path | None) -> None:
    """Start the local stack and keep it up to try by hand; Ctrl-C or SIGTERM stops everything it started."""
    from gpuorch_dev.local.deployment import LocalOptions
    from gpuorch_dev.local.paths import RUNS
    from gpuorch_dev.local.stack import StackError
    from gpuorch_dev.local.up import run_up

    options = LocalOptions(owner=LOCAL_OWNER, idle_stop_seconds=idle_stop_seconds, step_seconds=step_seconds,
                           comfyui_url=comfyui_url.rstrip("/"), warmup_workflow=warmup_workflow, api_port=api_port)
    run_dir = (logs_dir or RUNS / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    try:
        sys.exit(run_up(settings, options, run_dir, click.echo))
    except StackError as exc:
        click.echo(f"error: the local stack did not come up: {exc}", err=True)
        sys.exit(1)
