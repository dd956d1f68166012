"""`gpuorch submit|status|list|cancel`: jobs through the REST API at GPUORCH_API_URL, with GPUORCH_API_KEY."""

from __future__ import annotations

import base64
import json
import mimetypes
import sys
import time
from pathlib import Path
from typing import Any

import click

from gpuorch.cli.api import Api
from gpuorch.jobs import states
from gpuorch.jobs.options import OUTPUT_FORMATS, PRIORITIES
from gpuorch.settings import Settings

URI_PREFIXES = ("s3://", "https://", "http://", "data:")


def _api(settings: Settings) -> Api:
    return Api(settings.api_base_url, api_key=settings.api_key)


def describe_job(job: dict[str, Any]) -> str:
    """A job record as lines a person reads: status, progress, node, error and outputs."""
    lines = [f"job {job['job_id']} ({job.get('workflow')}): {job['status']}, {job.get('progress', 0)}%"]
    if job.get("node"):
        lines.append(f"  node: {job['node']}")
    if job.get("waiting_reason"):
        lines.append(f"  waiting: {job['waiting_reason']}")
    if job.get("error"):
        lines.append(f"  error: {job['error']}")
    for output in job.get("outputs") or ():
        lines.append(f"  output: {output.get('uri')}")
    return "\n".join(lines)


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job record as the API answers it.")
@click.pass_obj
def status(settings: Settings, job_id: str, as_json: bool) -> None:
    """One job's status, progress, node, error and outputs.

    Exit status: 0; 1 when no job has that id; 2 when the API cannot be reached.
    """
    job = _api(settings).call("GET", f"/api/v1/jobs/{job_id}")
    click.echo(json.dumps(job, indent=2) if as_json else describe_job(job))


@click.command("list")
@click.option("--status", "status_", type=click.Choice(states.STATUSES), help="Only jobs of this status.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="How many jobs, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as the API answers it (with next_cursor).")
@click.pass_obj
def list_jobs(settings: Settings, status_: str | None, limit: int, as_json: bool) -> None:
    """Jobs newest first: id, workflow, status, progress and when each was created.

    Exit status: 0; 1 when the API refuses the query; 2 when it cannot be reached.
    """
    params: dict[str, Any] = {"limit": limit, **({"status": status_} if status_ else {})}
    page = _api(settings).call("GET", "/api/v1/jobs", params=params)
    if as_json:
        click.echo(json.dumps(page, indent=2))
        return
    for job in page["jobs"]:
        click.echo(f"{job['job_id']}  {job['workflow']:<20} {job['status']:<9} {job.get('progress', 0):>3}%  "
                   f"{job['created_at']}")
    if not page["jobs"]:
        click.echo("No jobs.")


@click.command()
@click.argument("job_id")
@click.pass_obj
def cancel(settings: Settings, job_id: str) -> None:
    """Cancel a queued or running job.

    Exit status: 0 when cancelled; 1 when no job has that id or it has already finished; 2 when the API
    cannot be reached.
    """
    job = _api(settings).call("POST", f"/api/v1/jobs/{job_id}/cancel")
    click.echo(f"job {job['job_id']}: {job['status']}")


def parse_param(raw: str) -> tuple[str, Any]:
    """key=value, the value read as JSON when it is JSON (7, true, [1,2], "x") and as a plain string otherwise."""
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{raw!r} is not key=value", param_hint="'--param'")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def image_value(raw: str) -> str:
    """A URI as it is; a local file as a data: URI."""
    if raw.startswith(URI_PREFIXES):
        return raw
    path = Path(raw)
    if not path.is_file():
        raise click.BadParameter(f"{raw!r} is neither a URI (s3://, https://, data:) nor a file", param_hint="'--image'")
    media = mimetypes.guess_type(path.name)[0] or ""
    if not media.startswith("image/"):
        media = "image/png"  # the API decides the format by the bytes; the declared type only has to be image/
    return f"data:{media};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def image_fields(request_schema: dict[str, Any]) -> list[tuple[str, bool]]:
    """The request's image parameters, in order: (name, takes a list); found by their data: URI alternative."""

    def takes_data_uri(schema: dict[str, Any]) -> bool:
        return any(str(alt.get("pattern", "")).startswith("^data:image") for alt in schema.get("anyOf", ()))

    found = []
    for name, schema in request_schema.get("properties", {}).items():
        if takes_data_uri(schema):
            found.append((name, False))
        elif schema.get("type") == "array" and takes_data_uri(schema.get("items", {})):
            found.append((name, True))
    return found


def attach_images(body: dict[str, Any], images: list[str], request_schema: dict[str, Any]) -> None:
    fields = image_fields(request_schema)
    if not fields:
        raise click.BadParameter("this workflow takes no images", param_hint="'--image'")
    name, is_list = fields[0]
    if is_list:
        body[name] = images
    elif len(images) == 1:
        body[name] = images[0]
    else:
        raise click.BadParameter(f"this workflow takes one image ({name}), {len(images)} given", param_hint="'--image'")


def job_options(*, priority: str | None = None, deadline: str | None = None, ttl_seconds: int | None = None,
                output_format: str | None = None, quality: int | None = None, inline: bool = False
                ) -> dict[str, Any]:
    """The job options of a request from the command's options (only those given: the API has the defaults, and
    checks them, naming each bad one)."""
    options = {"priority": priority, "deadline": deadline, "ttl_seconds": ttl_seconds}
    output = {"format": output_format, "quality": quality, "inline": inline or None}
    output = {name: value for name, value in output.items() if value is not None}
    return {**{name: value for name, value in options.items() if value is not None},
            **({"output": output} if output else {})}


def follow(api: Api, job: dict[str, Any], poll_s: float) -> dict[str, Any]:
    """Poll the job until it is over, with a progress bar on stderr; returns its last record."""
    from tqdm import tqdm

    with tqdm(total=100, desc=job["job_id"][:8], unit="%", file=sys.stderr,
              bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}") as bar:
        while True:
            job = api.call("GET", f"/api/v1/jobs/{job['job_id']}")
            bar.n = int(job.get("progress") or 0)
            bar.set_postfix_str(f"{job['status']} {job.get('node') or ''}".strip())
            if states.is_terminal(job["status"]):
                return job
            time.sleep(poll_s)


@click.command()
@click.argument("workflow")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="A request parameter; the value is read as JSON when it is JSON (seed=7), else as text. Repeatable.")
@click.option("--image", "-i", "images", multiple=True, metavar="PATH_OR_URI",
              help="An input image: a local file (sent inline as a data: URI) or an s3:// or https:// URI. "
                   "Repeatable for workflows that take several.")
@click.option("--idempotency-key", metavar="KEY",
              help="Sent as Idempotency-Key: the same submission again with it gets the first one's job.")
@click.option("--priority", type=click.Choice(list(PRIORITIES)),
              help="low: start no GPU for it; it runs on a GPU that is up anyway, after the normal jobs.")
@click.option("--deadline", metavar="ISO_8601",
              help="Expire the job, never run, if it has not started by then (2026-06-01T12:00:00Z).")
@click.option("--ttl-seconds", type=click.IntRange(1), help="The deadline as seconds from now.")
@click.option("--format", "output_format", type=click.Choice(list(OUTPUT_FORMATS)),
              help="Store image outputs as png (ComfyUI's own, the default), jpeg or webp.")
@click.option("--quality", type=click.IntRange(1, 100), help="Quality of jpeg and webp outputs.")
@click.option("--inline", is_flag=True, help="Also carry small outputs in the job record, base64.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it is over.")
@click.option("--poll-seconds", type=click.FloatRange(0.05), default=1.0, show_default=True,
              help="How often --wait asks for the job.")
@click.pass_obj
def submit(settings: Settings, workflow: str, params: tuple[str, ...], images: tuple[str, ...],
           idempotency_key: str | None, priority: str | None, deadline: str | None, ttl_seconds: int | None,
           output_format: str | None, quality: int | None, inline: bool, wait: bool, poll_seconds: float) -> None:
    """Submit a job of WORKFLOW and print its id (POST /api/v1/workflows/WORKFLOW/jobs).

    Exit status: 0 when accepted (with --wait: when it succeeded); 1 when refused (each bad field is named),
    or with --wait when it failed or was cancelled; 2 for bad arguments or an unreachable API.
    """
    api = _api(settings)
    body = dict(parse_param(raw) for raw in params)
    body.update(job_options(priority=priority, deadline=deadline, ttl_seconds=ttl_seconds,
                            output_format=output_format, quality=quality, inline=inline))
    if images:
        described = api.call("GET", f"/api/v1/workflows/{workflow}")
        attach_images(body, [image_value(raw) for raw in images], described.get("request_schema", {}))
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    job = api.call("POST", f"/api/v1/workflows/{workflow}/jobs", json=body, headers=headers, ok=(200, 201, 202))
    click.echo(job["job_id"])
    if not wait:
        return
    job = follow(api, job, poll_seconds)
    click.echo(describe_job(job))
    sys.exit(0 if job["status"] == states.SUCCEEDED else 1)
