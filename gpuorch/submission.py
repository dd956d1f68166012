"""Accepting a job: validate the request, write the queued record, publish the task: all or nothing."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

from marshmallow import ValidationError

from gpuorch.errors import ParamsInvalid, UnknownWorkflow
from gpuorch.inputs import InputRejected, parse_input_uri
from gpuorch.jobs.store import Job
from gpuorch.services import Services
from gpuorch.workflows import Workflow

log = logging.getLogger(__name__)


def validate_request(services: Services, workflow_name: str, params: dict[str, Any]) -> tuple[Workflow, dict[str, Any]]:
    """The workflow and the normalized parameters; ParamsInvalid naming each bad field otherwise."""
    try:
        workflow = services.workflows.get(workflow_name)
    except KeyError:
        raise UnknownWorkflow(f"no workflow named {workflow_name!r}") from None
    if not isinstance(params, dict):
        raise ParamsInvalid({"_schema": ["the request body must be a JSON object"]})
    try:
        clean = workflow.request_schema().load(params)
    except ValidationError as exc:
        raise ParamsInvalid(exc.normalized_messages()) from None
    errors: dict[str, list[str]] = {}
    for name, uris in workflow.image_inputs(clean).items():
        for uri in uris:
            try:
                parse_input_uri(uri, services.settings.input_policy)
            except InputRejected as exc:
                errors.setdefault(name, []).append(str(exc))
    if errors:
        raise ParamsInvalid(errors)
    return workflow, clean


def accept(
    services: Services,
    workflow_name: str,
    params: dict[str, Any],
    publish: Callable[[str, Workflow, dict[str, Any]], None],
    *,
    source: str,
    job_id: str | None = None,
) -> Job:
    """Validate, record the job as queued, then publish it; a failed publish removes the record again."""
    workflow, clean = validate_request(services, workflow_name, params)
    job_id = job_id or str(uuid.uuid4())
    job = services.jobs.create(job_id, workflow.name, clean, source=source)
    try:
        publish(job_id, workflow, clean)
    except Exception:
        log.exception("job %s: could not be queued; its record is removed", job_id)
        services.jobs.delete(job_id)
        raise
    log.info("job %s accepted (%s, from %s)", job_id, workflow.name, source)
    return job
