"""The `gpuorch` command: provision AWS resources, run the local demo, show the configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gpuorch import __version__
from gpuorch.logs import configure_logging
from gpuorch.settings import Settings, SettingsError, documented_variables


@click.group()
@click.version_option(__version__, prog_name="gpuorch")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run ComfyUI workflows on an on-demand AWS GPU through Celery on SQS."""
    try:
        ctx.obj = Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging("WARNING" if ctx.obj.log_level.upper() == "INFO" else ctx.obj.log_level)


@main.command()
@click.pass_obj
def provision(settings: Settings) -> None:
    """Create the queues, tables and bucket (idempotent: a second run changes nothing)."""
    from gpuorch.aws.clients import AwsClients
    from gpuorch.aws.provision import Provisioner

    target = settings.aws_endpoint_url or f"AWS {settings.region}"
    click.echo(f"Provisioning on {target}:")
    changes = Provisioner(AwsClients(settings), settings, report=lambda c: click.echo(f"  {c}")).run()
    changed = [c for c in changes if c.action != "unchanged"]
    click.echo(f"{len(changed)} change(s)." if changed else "Nothing to change: everything is in place.")


@main.command()
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"),
              show_default=True, help="Folder the output images are written to.")
@click.option("--step-seconds", type=float, default=0.25, show_default=True,
              help="Emulated GPU time per sampler step.")
@click.pass_obj
def demo(settings: Settings, output_dir: Path, step_seconds: float) -> None:
    """Start the local stack, run one job of each workflow, write the outputs, stop everything."""
    from gpuorch.local.demo import run_demo

    ok = run_demo(settings, output_dir.resolve(), step_seconds)
    sys.exit(0 if ok else 1)


@main.command()
def config() -> None:
    """List every GPUORCH_* variable with its default and meaning."""
    for var, default, doc in documented_variables():
        shown = ",".join(default) if isinstance(default, tuple) else default
        click.echo(f"{var}={shown}\n    {doc}")
