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

from gpuorch.cli.api import TIMEOUT_S, Api
from gpuorch.jobs import states
from gpuorch.jobs.options import OUTPUT_FORMATS, PRIORITIES
from gpuorch.settings import Settings
from gpuorch.webhooks.events import DEFAULT_EVENTS, EVENTS

# The longest one wait the API grants (GET ?wait=): `gpuorch wait` asks again until its own timeout.
MAX_WAIT_S = 60

URI_PREFIXES = ("s3://", "https://", "http://", "data:")


def _api(settings: Settings) -> Api:
    return Api(settings.api_base_url, api_key=settings.api_key)


def describe_job(job: dict[str, Any]) -> str:
    """A job record as lines a person reads: status, progress, node, where it is and when it should finish, error,
    outputs, and what it was expected to cost beside what it did."""
    lines = [f"job {job['job_id']} ({job.get('workflow')}): {job['status']}, {job.get('progress', 0)}%"]
    if job.get("node"):
        lines.append(f"  node: {job['node']}")
    if job.get("phase"):
        lines.append(f"  where: {describe_place(job)}")
    if job.get("waiting_reason"):
        lines.append(f"  waiting: {job['waiting_reason']}")
    if job.get("estimate"):
        lines.append(f"  {describe_estimate(job['estimate'])}")
    if job.get("actual"):
        lines.append(f"  {describe_actual(job['actual'])}")
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


def describe_estimate(estimate: dict[str, Any]) -> str:
    """A price quote for a person: dollars warm and cold, and when it should finish."""
    finish = f", finish by {estimate['finish_by']}" if estimate.get("finish_by") else ""
    return (f"expected: ${estimate['usd_warm']:.4f} on a running GPU, ${estimate['usd_cold']:.4f} if one must start "
            f"({estimate['gpu_seconds']:.0f} GPU s; {estimate['phase'].replace('_', ' ')}{finish})")


def describe_place(job: dict[str, Any]) -> str:
    """Where a job not over is: its phase, the jobs ahead of it, when it should start and finish."""
    parts = [job["phase"].replace("_", " ")]
    if job.get("queue_position"):
        parts.append(f"behind {job['queue_position']} job(s)")
    eta = job.get("eta") or {}
    if eta:
        parts.append(f"starts in ~{eta['start_in_s']:.0f} s, finishes in ~{eta['finish_in_s']:.0f} s "
                     f"(by {eta['finish_by']})")
    return ", ".join(parts)


def describe_actual(done: dict[str, Any]) -> str:
    """What an ended job took and cost, beside its estimate."""
    parts = [f"${done['usd']:.4f} for {done['gpu_seconds']:.0f} GPU s" if done.get("usd") is not None
             else "no GPU time"]
    if done.get("finish_error_s") is not None:
        error = done["finish_error_s"]
        parts.append(f"ended {abs(error):.0f} s {'later' if error > 0 else 'sooner'} than estimated")
    return "actual: " + "; ".join(parts)


def where(data: dict[str, Any]) -> str:
    """A status event's state for a person: status, node, and while it waits where and until when."""
    parts = [data.get("status") or ""]
    # A job given back by its instance is still running by its status, waiting by its phase.
    if data.get("phase") not in (None, states.RUNNING):
        parts.append(data["phase"].replace("_", " "))
        if data.get("queue_position"):
            parts.append(f"behind {data['queue_position']}")
        eta = data.get("eta") or {}
        if eta.get("start_in_s") is not None:
            parts.append(f"starts in ~{eta['start_in_s']:.0f} s")
    if data.get("node"):
        parts.append(data["node"])
    return " ".join(parts)


def follow(api: Api, job: dict[str, Any]) -> dict[str, Any]:
    """Follow the job's event stream until it is over, with a progress bar on stderr; returns its final record."""
    from tqdm import tqdm

    with tqdm(total=100, desc=job["job_id"][:8], unit="%", file=sys.stderr,
              bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}") as bar:
        for event, data in api.events(f"/api/v1/jobs/{job['job_id']}/events"):
            if "progress" in data:
                bar.n = int(data.get("progress") or 0)
            if event == "end":
                bar.refresh()
                return data
            bar.set_postfix_str(where(data) if event == "status" else str(data.get("node") or ""))
            bar.refresh()
    # The stream closed without its end (a restarted API): the record as it is.
    return api.call("GET", f"/api/v1/jobs/{job['job_id']}")


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
@click.option("--webhook", metavar="URL", help="POST the job's events to this public https:// URL, signed with "
                                               "the API key's webhook secret.  [default: the key's default webhook]")
@click.option("--webhook-event", "webhook_events", multiple=True, type=click.Choice(EVENTS),
              help="An event the webhook hears; repeatable.  [default: every status change]")
@click.option("--wait", is_flag=True, help="Follow the job's event stream, with a progress bar, until it is over.")
@click.pass_obj
def submit(settings: Settings, workflow: str, params: tuple[str, ...], images: tuple[str, ...],
           idempotency_key: str | None, priority: str | None, deadline: str | None, ttl_seconds: int | None,
           output_format: str | None, quality: int | None, inline: bool, webhook: str | None,
           webhook_events: tuple[str, ...], wait: bool) -> None:
    """Submit a job of WORKFLOW and print its id (POST /api/v1/workflows/WORKFLOW/jobs), and what it is expected
    to cost (on stderr).

    Exit status: 0 when accepted (with --wait: when it succeeded); 1 when refused (each bad field is named),
    or with --wait when it failed or was cancelled; 2 for bad arguments or an unreachable API.
    """
    api = _api(settings)
    body = dict(parse_param(raw) for raw in params)
    body.update(job_options(priority=priority, deadline=deadline, ttl_seconds=ttl_seconds,
                            output_format=output_format, quality=quality, inline=inline))
    if webhook:
        body["webhook"] = webhook
    if webhook_events:
        body["webhook_events"] = list(webhook_events)
    if images:
        described = api.call("GET", f"/api/v1/workflows/{workflow}")
        attach_images(body, [image_value(raw) for raw in images], described.get("request_schema", {}))
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    job = api.call("POST", f"/api/v1/workflows/{workflow}/jobs", json=body, headers=headers, ok=(200, 201, 202))
    click.echo(job["job_id"])
    if job.get("estimate"):
        click.echo(describe_estimate(job["estimate"]), err=True)
    if not wait:
        return
    job = follow(api, job)
    click.echo(describe_job(job))
    sys.exit(0 if job["status"] == states.SUCCEEDED else 1)


@click.command("wait")
@click.argument("job_id")
@click.option("--timeout", type=click.FloatRange(0), default=600, show_default=True,
              help="Seconds to wait at most.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as the API answers it.")
@click.pass_obj
def wait_job(settings: Settings, job_id: str, timeout: float, as_json: bool) -> None:
    """Wait for a job to end (GET /api/v1/jobs/JOB_ID?wait=N, asked again until --timeout), and print its record.

    Exit status: 0 when it succeeded; 1 when it failed or was cancelled, when no job has that id, or when it is
    not over within --timeout; 2 when the API cannot be reached.
    """
    api = _api(settings)
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.0, deadline - time.monotonic())
        job = api.call("GET", f"/api/v1/jobs/{job_id}", params={"wait": min(MAX_WAIT_S, left)},
                       timeout=min(MAX_WAIT_S, left) + TIMEOUT_S)
        if states.is_terminal(job["status"]) or left <= 0:
            break
    click.echo(json.dumps(job, indent=2) if as_json else describe_job(job))
    sys.exit(0 if job["status"] == states.SUCCEEDED else 1)


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event: {event, data}.")
@click.pass_obj
def events(settings: Settings, job_id: str, as_json: bool) -> None:
    """Print a job's events as they happen (GET /api/v1/jobs/JOB_ID/events), until it is over.

    Exit status: 0 when it succeeded; 1 when it failed or was cancelled, or when no job has that id; 2 when the
    API cannot be reached.
    """
    final: dict[str, Any] = {}
    for event, data in _api(settings).events(f"/api/v1/jobs/{job_id}/events"):
        if as_json:
            click.echo(json.dumps({"event": event, "data": data}))
        elif event == "end":
            click.echo(describe_job(data))
        elif event == "status":
            click.echo(f"{event}: {where(data)}")
        else:
            click.echo(f"{event}: {data.get('progress')}% {data.get('node') or ''}".rstrip())
        final = data if event == "end" else final
    sys.exit(0 if final.get("status") == states.SUCCEEDED else 1)


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the deliveries as the API answers them.")
@click.pass_obj
def deliveries(settings: Settings, job_id: str, as_json: bool) -> None:
    """A job's webhook deliveries: each event's state, its tries and their answers, its next try.

    Exit status: 0; 1 when no job has that id; 2 when the API cannot be reached.
    """
    found = _api(settings).call("GET", f"/api/v1/jobs/{job_id}/deliveries")
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for delivery in found["deliveries"]:
        then = f", next try {delivery['next_try_at']}" if delivery.get("next_try_at") else ""
        click.echo(f"{delivery['topic']}: {delivery['state']} ({len(delivery['attempts'])} tries{then}) "
                   f"-> {delivery['url']}")
        for attempt in delivery["attempts"]:
            click.echo(f"  {attempt['at']}  {attempt['status_code'] or '-'}  {attempt['duration_ms']:.0f} ms"
                       + (f"  {attempt['error']}" if attempt.get("error") else ""))
    if not found["deliveries"]:
        click.echo("No webhook deliveries.")


@click.command()
@click.argument("job_id")
@click.option("--event", type=click.Choice(DEFAULT_EVENTS), help="The event to deliver again.  [default: the "
                                                                 "job's latest]")
@click.pass_obj
def resend(settings: Settings, job_id: str, event: str | None) -> None:
    """Deliver one of a job's webhook events again (a new round of tries).

    Exit status: 0 when queued; 1 when no job has that id or it has no such delivery; 2 when the API cannot be
    reached.
    """
    queued = _api(settings).call("POST", f"/api/v1/jobs/{job_id}/deliveries/resend",
                                 json={"event": event} if event else {}, ok=(202,))
    click.echo(f"job {queued['job_id']}: {queued['topic']} queued again for {queued['url']}")
