"""The `gpuorch-dev` command: the local stack on loopback (moto, the ComfyUI emulator, every gpuorch process)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gpuorch.logs import configure_logging
from gpuorch.settings import Settings, SettingsError


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


