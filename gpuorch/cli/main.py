"""The `gpuorch` command: deploy on AWS, provision AWS resources, check workflow templates, show the configuration,
submit and follow jobs, operate the GPU and the dead-letter queue, report the GPU's cost and simulate policies."""

from __future__ import annotations

import json
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
    # A person reads this output: plain text, and only warnings unless asked for more.
    configure_logging("WARNING" if ctx.obj.log_level.upper() == "INFO" else ctx.obj.log_level, "text")


@main.command()
@click.pass_obj
def provision(settings: Settings) -> None:
    """Create the queues, tables and bucket (idempotent: a second run changes nothing)."""
    from gpuorch.aws.clients import AwsClients
    from gpuorch.provision import Provisioner

    target = settings.aws_endpoint_url or f"AWS {settings.region}"
    click.echo(f"Provisioning on {target}:")
    changes = Provisioner(AwsClients(settings), settings, report=lambda c: click.echo(f"  {c}")).run()
    changed = [c for c in changes if c.action != "unchanged"]
    click.echo(f"{len(changed)} change(s)." if changed else "Nothing to change: everything is in place.")


@main.group()
def workflows() -> None:
    """The workflow templates under GPUORCH_WORKFLOWS_DIR."""


@workflows.command("check")
@click.option("--comfyui-url", metavar="URL",
              help="ComfyUI server whose live /object_info to check against.  [default: GPUORCH_COMFYUI_URL]")
@click.option("--catalogue", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="A saved /object_info file to check against instead, e.g. configs/comfyui/object_info.json; "
                   "model files are then assumed present.")
@click.pass_obj
def check(settings: Settings, comfyui_url: str | None, catalogue: Path | None) -> None:
    """Validate every workflow template as the target ComfyUI would.

    Prints one line per workflow that passes ("ok NAME") and one per problem ("FAIL NAME ..."). Exit
    status: 0 when every template passes, 1 when any fails, 2 when there is nothing to check against
    (the server cannot be reached, or the catalogue file cannot be read).
    """
    from gpuorch.workflows import load_workflows
    from gpuorch.workflows.errors import WorkflowDefinitionError
    from gpuorch.workflows.preflight import CatalogueUnavailable, check_templates, live_catalogue, saved_catalogue

    if comfyui_url and catalogue:
        raise click.UsageError("give --comfyui-url or --catalogue, not both")
    try:
        workflows = load_workflows(settings.workflows_dir)
    except WorkflowDefinitionError as exc:
        click.echo(f"FAIL {exc}")
        sys.exit(1)
    try:
        if catalogue is not None:
            target = saved_catalogue(catalogue)
        else:
            target = live_catalogue(comfyui_url or settings.comfyui_url, timeout=settings.comfyui_timeout)
    except CatalogueUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

    result = check_templates(workflows, target, settings.models)
    click.echo(f"Checking {len(workflows)} workflow(s) from {settings.workflows_dir or 'the built-in workflows'} "
               f"against {result.source}.")
    if result.assumption:
        click.echo(f"note: {result.assumption}")
    for name, problems in result.problems.items():
        if not problems:
            click.echo(f"ok {name}")
        for problem in problems:
            click.echo(f"FAIL {problem}")
    failed = result.failed
    if failed:
        click.echo(f"{len(failed)} of {len(workflows)} workflow(s) failed: {', '.join(failed)}")
    else:
        click.echo(f"All {len(workflows)} workflow(s) pass.")
    sys.exit(1 if failed else 0)


@main.command()
def config() -> None:
    """List every GPUORCH_* variable with its default and meaning."""
    for var, default, doc in documented_variables():
        shown = ",".join(default) if isinstance(default, tuple) else default
        click.echo(f"{var}={shown}\n    {doc}")


@main.command()
@click.option("--from", "from_", metavar="DATE",
              help="Start: an ISO 8601 date (its midnight UTC) or date-time.  [default: the start of the month]")
@click.option("--to", metavar="DATE",
              help="End, excluded: an ISO 8601 date (that whole day included) or date-time.  [default: now]")
@click.option("--by", type=click.Choice(["owner"]), help="Also each owner's part of the cost (chargeback).")
@click.option("--compare", is_flag=True, help="Also what the period's jobs would have cost under the replaced rule, "
                                              "each fixed idle time, the learning policy and serverless.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (as GET /api/v1/costs answers it).")
@click.pass_obj
def cost(settings: Settings, from_: str | None, to: str | None, by: str | None, compare: bool, as_json: bool) -> None:
    """What the GPU cost over a period (default: this month so far).

    Hours billed (per second, at least 60 s per start, at each run's price), dollars, the shares of that time
    spent busy, idle and booting, jobs and cost per job, and this month's spend beside the budget when one is
    set; with --by owner, each owner's part: its jobs' GPU seconds and, in the same proportion, the boot and idle
    time around them; with --compare, the period's jobs replayed under other ways of running the GPU, and the
    setting the history recommends. Exit status: 0; 1 for a bad date or period; 2 when AWS cannot be reached.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from gpuorch.aws.clients import AwsClients
    from gpuorch.clock import utc_now
    from gpuorch.jobs.store import JobStore
    from lifecycle.advice import Deployment, compare_period, format_comparison
    from lifecycle.live.costs import PeriodError, format_document, parse_period, period_costs, run_log_for

    now = utc_now()
    try:
        period = parse_period(from_, to, now)
    except PeriodError as exc:
        click.echo(f"error: --{exc.field}: {exc.reason}", err=True)
        sys.exit(1)
    aws = AwsClients(settings)
    jobs = JobStore(aws.dynamodb, settings.job_table, ttl_seconds=settings.job_ttl_seconds)
    try:
        run_log = run_log_for(aws.dynamodb, settings.control_table, settings.region)
        document = period_costs(run_log, jobs, period, now=now, monthly_budget_usd=settings.monthly_budget_usd,
                                by_owner=by == "owner")
        if compare:
            document["compare"] = compare_period(run_log, jobs, period, now=now, deployment=Deployment.of(settings))
    except (BotoCoreError, ClientError) as exc:
        target = settings.aws_endpoint_url or f"AWS {settings.region}"
        click.echo(f"error: cannot read the runs and jobs from {target}: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(format_document(document))
    if compare:
        click.echo(format_comparison(document["compare"]))


@main.command()
@click.option("--trace", "trace", required=True, metavar="FILE",
              help="CSV of job arrivals (arrival_s,gpu_s), e.g. lifecycle/simulation/traces/bursty.csv.")
@click.option("--policy", metavar="SPEC",
              help="default, replaced, fixed-<minutes>, or NAME,key=value,... overrides of a policy's settings.  "
                   "[default: default]")
def simulate(trace: str, policy: str | None) -> None:
    """Replay a trace of job arrivals through a lifecycle policy, beside the replaced rule and the optimum."""
    from lifecycle.simulation.policies import PolicyError
    from lifecycle.simulation.simulate import simulate_command
    from lifecycle.simulation.workload import TraceError

    try:
        text = simulate_command(trace, policy)
    except TraceError as exc:
        raise click.BadParameter(str(exc), param_hint="'--trace'") from None
    except PolicyError as exc:
        raise click.BadParameter(str(exc), param_hint="'--policy'") from None
    click.echo(text)


def _register() -> None:
    """The subcommands kept in modules of their own: jobs and batches over the REST API, the GPU pool, dead letters,
    keys, model files, deploying."""
    from gpuorch.cli import batches, deploy, dlq, gpu, jobs, keys, models

    for command in (jobs.submit, jobs.status, jobs.wait_job, jobs.events, jobs.list_jobs, jobs.cancel,
                    jobs.deliveries, jobs.resend, batches.batch, gpu.gpu, dlq.dlq, keys.keys, models.models,
                    deploy.deploy):
        main.add_command(command)


_register()
