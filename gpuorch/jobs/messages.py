"""What a GPU queue message must be before a worker runs it: pure checks shared by the worker, `dlq` and redrive."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from gpuorch.errors import RequestRefused, UnknownWorkflow
from gpuorch.jobs.store import Job

JSON = "application/json"
# DynamoDB allows longer keys, but no id gpuorch hands out comes near this.
MAX_JOB_ID = 128
# Reasons travel as an SQS message attribute and into a job's error: keep them readable, and bounded.
MAX_REASON = 1000


class MessageRejected(RequestRefused, ValueError):
    """A message that can never run: `reason` says why; `job_id` when the message names one."""

    def __init__(self, reason: str, job_id: str | None = None):
        self.reason = reason[:MAX_REASON]
        self.job_id = job_id
        super().__init__(self.reason)


@dataclass(frozen=True)
class TaskCall:
    """A GPU task message that passed every check: which job, which task, which workflow and parameters."""

    job_id: str
    task: str
    workflow: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Envelope:
    """The parts of a kombu message the checks need: Celery's headers, the content type and the body text."""

    headers: Mapping[str, Any]
    content_type: str | None
    body: Any


def decode_sqs_body(raw: str) -> Envelope:
    """Undo kombu's encoding of an SQS message body (base64 of a JSON envelope whose body is base64 too)."""
    try:
        envelope = json.loads(base64.b64decode(raw, validate=True))
    except (TypeError, ValueError, binascii.Error) as exc:
        raise MessageRejected(
            f"not a Celery task message: its body is not base64 of JSON ({type(exc).__name__})") from None
    if not isinstance(envelope, dict):
        raise MessageRejected("not a Celery task message: its body is not a JSON object")
    body = envelope.get("body")
    properties = envelope.get("properties")
    encoding = properties.get("body_encoding") if isinstance(properties, dict) else None
    if encoding == "base64" and isinstance(body, str):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (ValueError, binascii.Error):
            raise MessageRejected("not a Celery task message: its inner body is not base64 of UTF-8 text") from None
    headers = envelope.get("headers")
    return Envelope(headers if isinstance(headers, dict) else {}, envelope.get("content-type"), body)


def check_task_message(envelope: Envelope, task_workflows: Mapping[str, str | None], workflows) -> TaskCall:
    """The call a message asks for, or MessageRejected saying why it can never run.

    `task_workflows` maps each GPU task name to the workflow it runs (None: named by its `workflow` keyword);
    `workflows` is the WorkflowSet whose request schemas the API validates submissions with.
    """
    headers = envelope.headers
    task = headers.get("task")
    if not isinstance(task, str) or not task:
        raise MessageRejected("not a Celery task message: no task name in its headers")
    job_id = headers.get("id")
    if not isinstance(job_id, str) or not job_id.strip() or len(job_id) > MAX_JOB_ID:
        raise MessageRejected(f"task {task}: no usable task id in its headers ({job_id!r})")
    if task not in task_workflows:
        raise MessageRejected(f"unknown task {task!r}: the GPU queue runs only {', '.join(sorted(task_workflows))}",
                              job_id)
    if envelope.content_type != JSON:
        raise MessageRejected(f"content type {envelope.content_type!r} is not {JSON}", job_id)
    args, kwargs = _arguments(envelope.body, job_id)
    if args:
        raise MessageRejected(f"{task} takes keyword arguments only, got {len(args)} positional", job_id)
    workflow_name, params = _workflow_and_params(task, task_workflows[task], kwargs, job_id)
    try:
        workflow = workflows.get(workflow_name)
    except UnknownWorkflow:
        raise MessageRejected(f"unknown workflow {workflow_name!r}", job_id) from None
    try:
        clean = workflow.request_schema().load(params)
    except ValidationError as exc:
        problems = _fields(exc.normalized_messages())
        raise MessageRejected(f"invalid {workflow_name} parameters: {problems}", job_id) from None
    return TaskCall(job_id, task, workflow_name, clean)


def record_problem(call: TaskCall, job: Job | None) -> str | None:
    """Why a valid message still cannot run against its job record (None: it can)."""
    if job is None:
        return f"no job record for {call.job_id}: gpuorch never accepted this job"
    if job.workflow != call.workflow:
        return f"the message runs {call.workflow} but job {call.job_id} is a {job.workflow} job"
    return None


def _arguments(body: Any, job_id: str) -> tuple[list, dict]:
    """(args, kwargs) of a Celery protocol 2 body: a JSON array [args, kwargs, embed]."""
    try:
        decoded = json.loads(body) if isinstance(body, (str, bytes)) else body
    except ValueError:
        raise MessageRejected("its body is not JSON", job_id) from None
    if not isinstance(decoded, list) or len(decoded) != 3:
        raise MessageRejected("its body is not a Celery protocol 2 body [args, kwargs, embed]", job_id)
    args, kwargs, _embed = decoded
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise MessageRejected("its args are not a list or its kwargs not an object", job_id)
    return args, kwargs


def _workflow_and_params(task: str, workflow: str | None, kwargs: dict, job_id: str) -> tuple[str, Any]:
    if workflow is not None:
        return workflow, kwargs
    extra = sorted(set(kwargs) - {"workflow", "params"})
    if extra:
        raise MessageRejected(f"{task} takes workflow and params, not {', '.join(extra)}", job_id)
    name, params = kwargs.get("workflow"), kwargs.get("params", {})
    if not isinstance(name, str) or not name:
        raise MessageRejected(f"{task}: workflow must be a workflow name, not {name!r}", job_id)
    if not isinstance(params, dict):
        raise MessageRejected(f"{task}: params must be an object, not {type(params).__name__}", job_id)
    return name, params


def _fields(messages: Any) -> str:
    """marshmallow's {field: [reasons]} as one line: `move: Must be one of ...; image: Missing data ...`."""
    if not isinstance(messages, dict):
        return str(messages)
    return "; ".join(f"{field}: {' '.join(map(str, reasons)) if isinstance(reasons, list) else reasons}"
                     for field, reasons in sorted(messages.items(), key=lambda kv: str(kv[0])))
