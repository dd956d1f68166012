"""`gpuorch batch submit|status|cancel`: a folder of images as one batch through the REST API, followed and cancelled
as one."""

from __future__ import annotations

import json
import mimetypes
import sys
import time
from pathlib import Path
from typing import Any

import click

from gpuorch.cli.api import Api
from gpuorch.cli.jobs import image_fields, job_options, parse_param
from gpuorch.jobs.batches import MAX_BATCH_ITEMS
from gpuorch.jobs.options import OUTPUT_FORMATS, PRIORITIES
from gpuorch.settings import Settings

# The images a folder contributes, by extension; the API decides each one's format by its bytes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _api(settings: Settings) -> Api:
    return Api(settings.api_base_url, api_key=settings.api_key)


def folder_images(folder: Path) -> list[Path]:
    """The folder's images (not its sub-folders'), by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def describe_batch(batch: dict[str, Any]) -> str:
    """A batch as lines a person reads: its counts, then each item's job."""
    counts = ", ".join(f"{n} {status}" for status, n in batch["counts"].items() if n)
    lines = [f"batch {batch['batch_id']}: {batch['total']} item(s): {counts}"]
    lines += [f"  {job['job_id']}  {job['workflow']:<20} {job['status']:<9} {job.get('progress', 0):>3}%"
              for job in batch["items"]]
    return "\n".join(lines)


def follow_batch(api: Api, batch: dict[str, Any], poll_s: float) -> dict[str, Any]:
    """Poll the batch until every item has finished, with a progress bar of finished items on stderr."""
    from tqdm import tqdm

    with tqdm(total=batch["total"], desc=batch["batch_id"][:8], unit="job", file=sys.stderr) as bar:
        while True:
            batch = api.call("GET", batch["links"]["self"])
            bar.n = sum(1 for job in batch["items"] if job["status"] not in ("queued", "running"))
            bar.refresh()
            if batch["finished"]:
                return batch
            time.sleep(poll_s)


@click.group("batch")
def batch() -> None:
    """Many jobs at once: a folder of images as one batch (POST /api/v1/batches)."""


@batch.command("submit")
@click.argument("workflow")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="A request parameter of every item; read as JSON when it is JSON, else as text. Repeatable.")
@click.option("--idempotency-key", metavar="KEY", help="Sent as Idempotency-Key: the same batch again is the first.")
@click.option("--priority", type=click.Choice(list(PRIORITIES)), help="Every item's priority.")
@click.option("--deadline", metavar="ISO_8601", help="Every item's deadline.")
@click.option("--ttl-seconds", type=click.IntRange(1), help="Every item's deadline as seconds from now.")
@click.option("--format", "output_format", type=click.Choice(list(OUTPUT_FORMATS)), help="Store outputs as this.")
@click.option("--quality", type=click.IntRange(1, 100), help="Quality of jpeg and webp outputs.")
@click.option("--wait", is_flag=True, help="Follow the batch until every item is over.")
@click.option("--poll-seconds", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="How often --wait asks for the batch.")
@click.pass_obj
def submit(settings: Settings, workflow: str, folder: Path, params: tuple[str, ...], idempotency_key: str | None,
           priority: str | None, deadline: str | None, ttl_seconds: int | None, output_format: str | None,
           quality: int | None, wait: bool, poll_seconds: float) -> None:
    """Submit each image of FOLDER as a job of WORKFLOW, all as one batch; print the batch's id.

    Each image goes as a file part of a multipart request into the workflow's image parameter; the other parameters
    and options are every item's. Exit status: 0 when accepted (with --wait: when every item succeeded); 1 when
    refused (each bad item's field is named), or with --wait when an item did not succeed; 2 for bad arguments or
    an unreachable API.
    """
    images = folder_images(folder)
    if not images:
        raise click.BadParameter(f"{folder} holds no {', '.join(IMAGE_SUFFIXES)} image", param_hint="'FOLDER'")
    if len(images) > MAX_BATCH_ITEMS:
        raise click.BadParameter(f"{folder} holds {len(images)} images; a batch holds at most {MAX_BATCH_ITEMS}",
                                 param_hint="'FOLDER'")
    api = _api(settings)
    fields = image_fields(api.call("GET", f"/api/v1/workflows/{workflow}").get("request_schema", {}))
    if not fields:
        raise click.BadParameter(f"{workflow} takes no images", param_hint="'WORKFLOW'")
    image_param = fields[0][0]
    item = {"workflow": workflow, **dict(parse_param(raw) for raw in params),
            **job_options(priority=priority, deadline=deadline, ttl_seconds=ttl_seconds,
                          output_format=output_format, quality=quality)}
    files = [(f"items.{index}.{image_param}",
              (path.name, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream"))
             for index, path in enumerate(images)]
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    accepted = api.call("POST", "/api/v1/batches", data={"params": json.dumps({"items": [item] * len(images)})},
                        files=files, headers=headers, ok=(202,))
    click.echo(accepted["batch_id"])
    if not wait:
        return
    finished = follow_batch(api, accepted, poll_seconds)
    click.echo(describe_batch(finished))
    sys.exit(0 if finished["counts"].get("succeeded") == finished["total"] else 1)


@batch.command("status")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="Print the batch as the API answers it.")
@click.pass_obj
def status(settings: Settings, batch_id: str, as_json: bool) -> None:
    """A batch's counts by status and each item's job.

    Exit status: 0; 1 when no batch has that id; 2 when the API cannot be reached.
    """
    found = _api(settings).call("GET", f"/api/v1/batches/{batch_id}")
    click.echo(json.dumps(found, indent=2) if as_json else describe_batch(found))


@batch.command("cancel")
@click.argument("batch_id")
@click.pass_obj
def cancel(settings: Settings, batch_id: str) -> None:
    """Cancel every item of a batch still queued or running.

    Exit status: 0; 1 when no batch has that id; 2 when the API cannot be reached.
    """
    click.echo(describe_batch(_api(settings).call("POST", f"/api/v1/batches/{batch_id}/cancel")))
