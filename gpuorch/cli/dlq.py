"""`gpuorch dlq list|redrive|delete`: what reached the GPU dead-letter queue and why; resubmit or remove it."""

from __future__ import annotations

import json
import sys

import click
from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.settings import Settings


def _dead_letters(settings: Settings, *, publishing: bool = False):
    from gpuorch.celery.app import create_celery_app
    from gpuorch.celery.names import GPU_TASK_WORKFLOWS
    from gpuorch.jobs.redrive import DeadLetters

    app = create_celery_app(settings)  # redriven jobs are published to these settings' queues
    return DeadLetters(app.services, GPU_TASK_WORKFLOWS, app.submitter if publishing else None)


def _aws_failed(exc: Exception) -> None:
    click.echo(f"error: AWS did not answer: {exc}", err=True)
    sys.exit(2)


@click.group()
def dlq() -> None:
    """The GPU queue's dead-letter queue: messages a GPU worker rejected, or ones received GPUORCH_MAX_RECEIVE_COUNT
    times."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message, in a list.")
@click.pass_obj
def dlq_list(settings: Settings, as_json: bool) -> None:
    """Each dead-lettered message: its job, why it is there, the job's status, and whether redrive can resubmit it.

    Nothing is removed, and the messages are visible again as soon as the listing ends.
    """
    try:
        rows = [item.as_dict() for item in _dead_letters(settings).list()]
    except (BotoCoreError, ClientError) as exc:
        _aws_failed(exc)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"{settings.gpu_dead_letter_queue} is empty")
    else:
        for row in rows:
            job = row["job_id"] or f"(message {row['message_id']})"
            fix = "fixable" if row["fixable"] else f"unfixable: {row['unfixable']}"
            linked = f"  redriven as {row['redriven_as']}" if row["redriven_as"] else ""
            click.echo(f"{job}  {row['task'] or '-'}  {row['job_status'] or 'no record'}{linked}\n"
                       f"    why: {row['reason']}\n    {fix}")


@dlq.command("redrive")
@click.argument("ids", nargs=-1, metavar="[MESSAGE_OR_JOB_ID]...")
@click.option("--all", "everything", is_flag=True, help="Every fixable message in the dead-letter queue.")
@click.option("--dry-run", is_flag=True, help="Say what would be resubmitted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="The outcomes as a JSON list.")
@click.pass_obj
def dlq_redrive(settings: Settings, ids: tuple[str, ...], everything: bool, dry_run: bool, as_json: bool) -> None:
    """Resubmit dead-lettered jobs that can still run, each as a new job linked to the old one.

    Unfixable messages (not a task message, unknown task, invalid parameters, no job record, a job that succeeded
    or was cancelled) are reported and left in place. Exit status: 0 when every named message was redriven (or
    would be, with --dry-run); 1 when any was left or not found; 2 when AWS cannot be reached.
    """
    if bool(ids) == everything:
        raise click.UsageError("name the messages or jobs to redrive, or give --all (not both)")
    try:
        outcomes = _dead_letters(settings, publishing=not dry_run).redrive(ids, everything=everything, dry_run=dry_run)
    except (BotoCoreError, ClientError) as exc:
        _aws_failed(exc)
    _report(outcomes, as_json, f"{settings.gpu_dead_letter_queue} has nothing to redrive")
    # --all leaves the unfixable ones without failing: they were not asked for by name.
    failed = [o for o in outcomes if o.action == "not-found" or (o.action == "left" and not everything)]
    sys.exit(1 if failed else 0)


@dlq.command("delete")
@click.argument("ids", nargs=-1, metavar="[MESSAGE_OR_JOB_ID]...")
@click.option("--unfixable", is_flag=True, help="Every message redrive would leave (garbage, unknown task, ...).")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="The outcomes as a JSON list.")
@click.pass_obj
def dlq_delete(settings: Settings, ids: tuple[str, ...], unfixable: bool, dry_run: bool, as_json: bool) -> None:
    """Delete dead letters for good: the named ones (fixable or not), or with --unfixable every one redrive
    would leave. A job whose message is deleted stays failed. Exit status: 0; 1 when a named one was not found;
    2 when AWS cannot be reached.
    """
    if not ids and not unfixable:
        raise click.UsageError("name the messages or jobs to delete, or give --unfixable")
    try:
        outcomes = _dead_letters(settings).delete(ids, unfixable=unfixable, dry_run=dry_run)
    except (BotoCoreError, ClientError) as exc:
        _aws_failed(exc)
    _report(outcomes, as_json, f"{settings.gpu_dead_letter_queue} has nothing to delete")
    sys.exit(1 if any(o.action == "not-found" for o in outcomes) else 0)


def _report(outcomes, as_json: bool, nothing: str) -> None:
    if as_json:
        click.echo(json.dumps([o.as_dict() for o in outcomes], indent=2))
        return
    if not outcomes:
        click.echo(nothing)
    for o in outcomes:
        job = o.job_id or o.id
        click.echo(f"{o.action:13} {job} -> {o.new_job_id}" if o.new_job_id else f"{o.action:13} {job}: {o.reason}")
