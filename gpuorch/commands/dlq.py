"""`gpuorch dlq list`: what reached the GPU dead-letter queue, with each job's status, left in place."""

from __future__ import annotations

import json
import sys

import click
from botocore.exceptions import BotoCoreError, ClientError

from gpuorch.jobs.deadletters import read_dead_letter
from gpuorch.services import Services
from gpuorch.settings import Settings

# Messages read for the listing stay hidden this long, so one listing sees each once; then they are back.
LIST_VISIBILITY_S = 10
MAX_LISTED = 500


@click.group()
def dlq() -> None:
    """The GPU queue's dead-letter queue (messages received GPUORCH_MAX_RECEIVE_COUNT times)."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message, in a list.")
@click.pass_obj
def dlq_list(settings: Settings, as_json: bool) -> None:
    """Each dead-lettered message: its job id, task and the job's status and error (nothing is removed)."""
    services = Services(settings)
    try:
        rows = list(_letters(services))
    except (BotoCoreError, ClientError) as exc:
        click.echo(f"error: AWS did not answer: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"{settings.gpu_dead_letter_queue} is empty")
    else:
        for row in rows:
            job = row["job_id"] or f"(message {row['message_id']}: {row['problem']})"
            click.echo(f"{job}  {row['task'] or '-'}  {row['status'] or 'no record'}"
                       + (f"  {row['error']}" if row["error"] else ""))


def _letters(services: Services):
    sqs = services.aws.sqs
    url = services.aws.queue_url(services.settings.gpu_dead_letter_queue)
    seen: set[str] = set()
    while len(seen) < MAX_LISTED:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=LIST_VISIBILITY_S).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            letter = read_dead_letter(message)
            job = services.jobs.get(letter.job_id) if letter.job_id else None
            yield {"message_id": letter.message_id, "job_id": letter.job_id, "task": letter.task,
                   "problem": letter.problem, "status": job.status if job else None,
                   "error": job.error if job else None}
