"""Accepting a job, the one way into gpuorch (API, task.delay(), redrive): validate, store inline images, record, publish."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from marshmallow import ValidationError

from gpuorch.aws.s3 import S3Uri
from gpuorch.clock import utc_now
from gpuorch.errors import InputTooLarge, ParamsInvalid
from gpuorch.inputs import InputPolicy, InputRejected, inspect_image, parse_input_uri
from gpuorch.jobs import states
from gpuorch.jobs.idempotency import Accepted, OnceOnly, fingerprint
from gpuorch.jobs.options import JobOptions, parse_options, split_request
from gpuorch.jobs.store import Job, TransitionRefused
from gpuorch.services import Services
from gpuorch.settings import Settings
from gpuorch.webhooks.events import EVENTS_FIELD, subscription
from gpuorch.workflows import Workflow

log = logging.getLogger(__name__)

# Inline images are stored under inputs/{job_id}/ in the job bucket, which expires that prefix with the jobs.
INPUT_PREFIX = "inputs"

# What inspect_image reports -> (file extension, content type). A JPEG carrying several pictures (MPO,
# as phone cameras write) is still a JPEG to every reader.
IMAGE_TYPES = {
    "PNG": ("png", "image/png"),
    "JPEG": ("jpg", "image/jpeg"),
    "MPO": ("jpg", "image/jpeg"),
    "WEBP": ("webp", "image/webp"),
}


@dataclass(frozen=True)
class InlineImage:
    """An image's bytes sent with the request itself (a multipart file part), in place of its URI."""

    data: bytes

    def __repr__(self) -> str:
        return f"InlineImage({len(self.data)} bytes)"


@dataclass(frozen=True)
class StagedInput:
    """An inline image that passed its checks, with the S3 key it is stored under before the job is queued."""

    field: str
    key: str
    data: bytes = field(repr=False)
    content_type: str


def is_data_uri(value: Any) -> bool:
    return isinstance(value, str) and value[:5].lower() == "data:"


def decode_data_uri(text: str) -> bytes:
    """The bytes of a ``data:image/<type>;base64,<data>`` URI; InputRejected saying why it is refused otherwise."""
    header, comma, payload = text[len("data:"):].partition(",")
    if not comma:
        raise InputRejected("a data: URI needs a comma before its data: data:image/png;base64,<data>")
    media_type, *attributes = header.split(";")
    if not media_type.strip().lower().startswith("image/"):
        raise InputRejected(f"a data: URI must declare an image media type, not {media_type.strip() or 'none'!r}")
    if not attributes or attributes[-1].strip().lower() != "base64":
        raise InputRejected("a data: URI must be base64-encoded: data:image/png;base64,<data>")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputRejected(
            "the data: URI's base64 is malformed (standard alphabet, padded, without white space)"
        ) from None


def field_path(name: str, index: int | None) -> str:
    """How errors and keys name an image: ``image``, or ``images.1`` for the second of a list (as error bodies do)."""
    return name if index is None else f"{name}.{index}"


def inline_fields(workflow: Workflow, params: Mapping[str, Any]) -> list[tuple[str, int | None, Any]]:
    """(parameter, index in its list or None, value) of each image given inline (bytes or a data: URI)."""
    found: list[tuple[str, int | None, Any]] = []
    for param in workflow.image_params:
        value = params.get(param.name)
        if isinstance(value, (list, tuple)):
            found.extend((param.name, i, item) for i, item in enumerate(value) if _is_inline(item))
        elif _is_inline(value):
            found.append((param.name, None, value))
    return found


def _is_inline(value: Any) -> bool:
    return isinstance(value, InlineImage) or is_data_uri(value)


def input_key(job_id: str, field_name: str, image_format: str | None) -> str:
    """The S3 key of an inline image, named after the field it came in: inputs/{job_id}/images.1.png."""
    extension = IMAGE_TYPES[image_format][0] if image_format else None
    return f"{INPUT_PREFIX}/{job_id}/{field_name}" + (f".{extension}" if extension else "")


def stage_inline_images(
    settings: Settings, workflow: Workflow, params: Mapping[str, Any], job_id: str
) -> tuple[dict[str, Any], list[StagedInput], dict[str, list[str]], list[str]]:
    """Decide, without storing anything, what the request's inline images become.

    Returns the parameters with an ``s3://`` URI in place of each inline image, the images to store,
    the refused ones (field -> [reason]), and which of those were refused for their size alone. A refused
    image gets a URI too, so that validation reports the other fields' problems beside it rather than a
    second one for the same field.
    """
    replaced = dict(params)
    staged: list[StagedInput] = []
    errors: dict[str, list[str]] = {}
    too_large: list[str] = []
    for name, index, value in inline_fields(workflow, params):
        field_name = field_path(name, index)
        try:
            data = value.data if isinstance(value, InlineImage) else decode_data_uri(value)
            if len(data) > settings.max_input_bytes:
                too_large.append(field_name)
            info = inspect_image(data, max_pixels=settings.max_input_pixels, max_bytes=settings.max_input_bytes)
        except InputRejected as exc:
            errors[field_name] = [exc.reason]
            key = input_key(job_id, field_name, None)
        else:
            key = input_key(job_id, field_name, info.format)
            staged.append(StagedInput(field_name, key, data, IMAGE_TYPES[info.format][1]))
        uri = str(S3Uri(settings.bucket, key))
        if index is None:
            replaced[name] = uri
        else:
            replaced[name] = [*replaced[name]]
            replaced[name][index] = uri
    return replaced, staged, errors, too_large


def _problems(settings: Settings, workflow: Workflow, params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(normalized parameters, {field: reasons}): the workflow's schema, then each image URI against the policy."""
    if not isinstance(params, dict):
        return {}, {"_schema": ["the request body must be a JSON object"]}
    try:
        clean = workflow.request_schema().load(params)
    except ValidationError as exc:
        return {}, exc.normalized_messages()
    errors: dict[str, list[str]] = {}
    policy = InputPolicy.from_settings(settings)
    for name, uris in workflow.image_inputs(clean).items():
        for uri in uris:
            try:
                parse_input_uri(uri, policy)
            except InputRejected as exc:
                errors.setdefault(name, []).append(str(exc))
    return clean, errors


def store_inputs(services: Services, job_id: str, staged: Sequence[StagedInput]) -> None:
    """Put each staged image in the job bucket; on a failure remove those already put, then raise."""
    stored: list[StagedInput] = []
    try:
        for item in staged:
            services.aws.s3.put_object(
                Bucket=services.settings.bucket, Key=item.key, Body=item.data, ContentType=item.content_type
            )
            stored.append(item)
    except Exception:
        discard_inputs(services, job_id, stored)
        raise
    if stored:
        log.info("job %s: stored %d inline image(s) under %s/%s/", job_id, len(stored), INPUT_PREFIX, job_id)


def discard_inputs(services: Services, job_id: str, staged: Sequence[StagedInput]) -> None:
    """Delete stored inline images of a job that was not queued; a failure here is logged, never raised,
    so the caller's own error is the one reported (the bucket's expiry rule removes what is left)."""
    if not staged:
        return
    try:
        answer = services.aws.s3.delete_objects(
            Bucket=services.settings.bucket,
            Delete={"Objects": [{"Key": item.key} for item in staged], "Quiet": True},
        )
    except Exception:
        log.exception("job %s: could not delete its stored inputs; the bucket's expiry rule will", job_id)
        return
    for failure in answer.get("Errors", []):
        log.error("job %s: could not delete input %s: %s", job_id, failure.get("Key"), failure.get("Message"))


@dataclass(frozen=True)
class PreparedJob:
    """A request that passed every check, as job `job_id`: what is stored and recorded when it is accepted."""

    job_id: str
    workflow: str
    params: dict[str, Any]
    options: JobOptions
    staged: tuple[StagedInput, ...] = ()
    webhook: dict[str, Any] | None = None  # its webhook subscription's record (gpuorch.webhooks.events)
    estimate: dict[str, Any] | None = None  # what it was expected to take and cost when it was submitted


#: Queues a recorded job (its id, workflow, normalized parameters and priority). The Celery layer provides it.
Publish = Callable[[Job], None]


class JobSubmitter:
    """Accepts jobs: validates them, stores their inline images, records them as queued, then publishes them.

    All or nothing: nothing is stored unless the whole request is valid, and a failed record or publish removes
    what was written before it. The API, `task.delay()` and dead-letter redrive all submit through one of these.
    """

    def __init__(self, services: Services, publish: Publish):
        self.services = services
        self.settings = services.settings
        self.publish = publish
        self.once = OnceOnly(services.idempotency)

    def workflow(self, name: str) -> Workflow:
        """The workflow of that name; UnknownWorkflow naming the known ones otherwise."""
        return self.services.workflows.get(name)

    def submit(self, workflow_name: str, params: dict[str, Any], *, source: str, owner: str | None = None,
               job_id: str | None = None, webhook: Any = None, webhook_events: Any = None, key_id: str = "",
               estimate: Callable[[Workflow], dict[str, Any] | None] | None = None) -> Job:
        """Accept one job as `owner`'s (None: only operators see it); returns its queued record.

        `params` is the request: the workflow's parameters, and the job's options under their reserved names
        (gpuorch.jobs.options). Inline images (InlineImage values or data: URIs) become ``s3://`` URIs before
        validation, so the record and the queue message only ever name images. A `webhook` URL (with its
        `webhook_events`) is checked as an input URL is, and signed with the webhook secret of API key `key_id`.
        `estimate` is asked, once the request is valid, what the job is expected to take and cost (kept on its
        record). Raises UnknownWorkflow, ParamsInvalid naming every bad field (the webhook's too), or InputTooLarge
        (a ParamsInvalid) when an inline image has more bytes than allowed.
        """
        prepared = self.prepare(workflow_name, params, job_id or str(uuid.uuid4()), webhook=webhook,
                                webhook_events=webhook_events, key_id=key_id, estimate=estimate)
        store_inputs(self.services, prepared.job_id, prepared.staged)
        try:
            job = self.record(prepared, source=source, owner=owner)
            self._publish_or_forget(job)
        except Exception:
            discard_inputs(self.services, prepared.job_id, prepared.staged)
            raise
        log.info("job %s accepted (%s, from %s)", job.job_id, job.workflow, source, extra={"job_id": job.job_id})
        return job

    def prepare(self, workflow_name: str, params: Any, job_id: str, *, webhook: Any = None, webhook_events: Any = None,
                key_id: str = "", estimate: Callable[[Workflow], dict[str, Any] | None] | None = None) -> PreparedJob:
        """Check one request as job `job_id`, storing and recording nothing: what to store and record, or
        UnknownWorkflow, ParamsInvalid naming every bad field, or InputTooLarge (as submit() says)."""
        workflow = self.workflow(workflow_name)
        staged: list[StagedInput] = []
        image_errors: dict[str, list[str]] = {}
        too_large: list[str] = []
        option_errors: dict[str, list[str]] = {}
        options = JobOptions()
        if isinstance(params, dict):
            params, raw_options = split_request(params)
            options, option_errors = parse_options(raw_options, now=utc_now(), max_ttl_s=self.settings.job_ttl_seconds)
            params, staged, image_errors, too_large = stage_inline_images(self.settings, workflow, params, job_id)
        clean, errors = _problems(self.settings, workflow, params)
        subscription_record, webhook_errors = self._subscription(webhook, webhook_events, key_id)
        errors = {**errors, **option_errors, **webhook_errors}
        if too_large:
            raise InputTooLarge({**errors, **image_errors}, too_large)
        if errors or image_errors:
            raise ParamsInvalid({**errors, **image_errors})
        expected = estimate(workflow) if estimate is not None else None
        return PreparedJob(job_id, workflow.name, clean, options, tuple(staged), subscription_record, expected)

    def record(self, prepared: PreparedJob, *, source: str, owner: str | None, batch_id: str | None = None) -> Job:
        """Write the queued record of a prepared job (its inputs stored first)."""
        return self.services.jobs.create(prepared.job_id, prepared.workflow, prepared.params, source=source,
                                         owner=owner, options=prepared.options, batch_id=batch_id,
                                         webhook=prepared.webhook, estimate=prepared.estimate)

    def submit_once(self, idempotency_key: str | None, workflow_name: str, params: dict[str, Any], *, source: str,
                    owner: str | None = None, **extra: Any) -> Accepted[Job]:
        """submit() (with `extra`: its webhook, key and estimate), at most once per (owner, idempotency key): the
        same request again gets the first one's job (gpuorch.jobs.idempotency); without a key, simply submit()."""
        if idempotency_key is None:
            return Accepted(self.submit(workflow_name, params, source=source, owner=owner, **extra))
        request: dict[str, Any] = {"workflow": workflow_name, "params": params}
        # A webhook is part of the request: the same key with another webhook is another request.
        request.update({name: extra[name] for name in ("webhook", "webhook_events") if extra.get(name) is not None})
        return self.once.submit(
            owner, idempotency_key, "job", fingerprint("job", request),
            submit=lambda job_id: self.submit(workflow_name, params, source=source, owner=owner, job_id=job_id,
                                              **extra),
            find=self.services.jobs.get,
        )

    def _subscription(self, url: Any, events: Any, key_id: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """(the webhook subscription's record or None, the webhook fields' errors)."""
        if url is None:
            return None, ({EVENTS_FIELD: ["names the events of a webhook: give webhook too"]} if events is not None
                          else {})
        try:
            return subscription(url, events, key_id, allow_insecure=self.settings.allow_insecure_inputs).as_record(), {}
        except ParamsInvalid as refused:
            return None, refused.errors

    def resubmit(self, old: Job, new_id: str) -> Job | None:
        """Queue a dead-lettered job again as job `new_id` (same workflow, parameters, source and owner, linked by
        `redrive_of`): safe to repeat, since the record is created once and published only while still queued.
        Returns the new record (None if it vanished meanwhile)."""
        try:
            self.services.jobs.create(new_id, old.workflow, old.params, source=old.source, redrive_of=old.job_id,
                                      owner=old.owner, options=old.options, webhook=old.webhook)
        except TransitionRefused:
            pass  # recorded by an earlier redrive that stopped before the old record was linked
        new = self.services.jobs.get(new_id)
        if new is not None and new.status == states.QUEUED:
            # Published again after an interruption, the same job id reads as a redelivery of one job.
            self.publish(new)
        return new

    def publish_or_forget(self, job: Job) -> None:
        """Publish a recorded job; when that fails, remove its record (its message was never sent) and raise."""
        self._publish_or_forget(job)

    def _publish_or_forget(self, job: Job) -> None:
        try:
            self.publish(job)
        except Exception:
            log.exception("job %s: could not be queued; its record is removed", job.job_id,
                          extra={"job_id": job.job_id})
            self.services.jobs.delete(job.job_id)
            raise
