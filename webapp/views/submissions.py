"""Submitting jobs: POST /api/v1/{workflow}/jobs per workflow, and POST /api/v1/workflows/{name}/jobs for any."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import jsonify, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.jobs import states
from gpuorch.jobs.idempotency import HEADER, checked_key
from gpuorch.jobs.watch import TooManyWaiters
from gpuorch.webhooks.events import split_request
from gpuorch.workflows import Workflow
from webapp.auth import caller
from webapp.context import current
from webapp.errors import error_responses
from webapp.request_body import FORM_MEDIA_TYPE, image_fields, read_params
from webapp.request_schemas import form_body_schema, form_encoding, json_body_schema
from webapp.schemas import MAX_WAIT_S, JobAcceptedSchema, JobSchema, job_url
from webapp.views.jobs import answers

BLUEPRINT = "submissions"

_LOCATION = {"description": "URL of the new job.", "schema": {"type": "string"}}
# Stripe's name for it: the answer is that of an earlier request with the same Idempotency-Key.
REPLAYED_HEADER = "Idempotent-Replayed"
_REPLAYED = {"description": "true when the request's Idempotency-Key had already accepted this same request: the "
                            "job is that one (its status may have moved on).", "schema": {"type": "string"}}
IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "Any string of up to 255 printable ASCII characters the client makes per request (a UUID). The "
    "same key with the same request, again or at the same time, from anywhere, answers the first one's job and "
    "queues nothing more; with a different request it is refused (422 naming Idempotency-Key). Keys are kept as "
    "long as the jobs (GPUORCH_JOB_TTL_DAYS), at least 24 hours. A refused request does not use up its key.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255,
               "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"},
}
_ACCEPTED_HEADERS = {"Location": _LOCATION, REPLAYED_HEADER: _REPLAYED}
_APPLIED = {"description": "wait=N: the wait the answer honoured.", "schema": {"type": "string"}}
_WAITED = "Asked to wait (Prefer: wait=N) and over within N seconds: the job's finished record."
# The statuses a submission, of one job or of a batch, may be refused with (the submission's description says when).
SUBMISSION_ERRORS = (400, 402, 409, 413, 422, 429, 503)
PREFER = {
    "in": "header", "name": "Prefer", "required": False,
    "schema": {"type": "string", "pattern": "^(.*,\\s*)?wait=[0-9]+(\\s*,.*)?$"},
    "description": f"wait=N (RFC 7240): wait up to N seconds (at most {MAX_WAIT_S}) for the job to end. Over by "
                   "then: 200 with its finished record; else (or when this API process has GPUORCH_API_WAITERS "
                   "requests waiting already) 202 as without it.",
}


# The generic route's endpoint; a workflow's own is submit_<name>, so the two never clash.
ANY_WORKFLOW_ENDPOINT = "submit"


def endpoint(workflow_name: str) -> str:
    return f"submit_{workflow_name}"


def submit_url(workflow_name: str) -> str:
    return url_for(f"{BLUEPRINT}.{endpoint(workflow_name)}")


def preferred_wait(header: str | None) -> int | None:
    """The seconds a `Prefer: wait=N` header (RFC 7240) asks to wait, at most MAX_WAIT_S; None when it asks none."""
    for preference in (header or "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait" and value.strip().isdigit():
            return min(int(value.strip()), MAX_WAIT_S)
    return None


def accept(workflow_name: str):
    """Submit the request body as a job of the workflow: the 202 answer, with the job's URL as Location; or, asked
    to wait (Prefer: wait=N) and the job over within N seconds, 200 with its finished record."""
    context = current()
    # An unknown workflow is 404 whatever its body holds.
    workflow = context.workflow(workflow_name)
    key = caller()
    idempotency_key = checked_key(request.headers.get(HEADER))
    # Before the body is read: a refused submission costs no parsing, and stores, records and queues nothing. A
    # retry of a request its key already accepted is answered with that job, whatever the limits say now.
    if idempotency_key is None or context.submitter.once.earlier(key.owner, idempotency_key) is None:
        context.admit(key)
    params, webhook, events = split_request(read_params(workflow))
    if webhook is None and key.webhook_url:  # the key's default, with the events the request names, if any
        webhook, events = key.webhook_url, events if events is not None else key.webhook_events
    accepted = context.submitter.submit_once(idempotency_key, workflow.name, params, source="api", owner=key.owner,
                                             webhook=webhook, webhook_events=events, key_id=key.key_id,
                                             estimate=context.submission_estimate)
    job = accepted.value
    headers = accepted_headers(job.job_id, accepted.replayed)
    wait = preferred_wait(request.headers.get("Prefer"))
    if wait:
        try:
            with context.watch.follow(job.job_id) as follower:
                job = follower.until_over(job, wait)
        except TooManyWaiters:
            return job, 202, headers  # accepted all the same: it is only not waited for
        headers["Preference-Applied"] = f"wait={wait}"
        if states.is_terminal(job.status):
            return jsonify(JobSchema().dump(answers([job])[0])), 200, headers
    return job, 202, headers


def accepted_headers(job_id: str, replayed: bool) -> dict[str, str]:
    """The job's URL as Location; and, for a request its idempotency key had already accepted, a header saying so."""
    return {"Location": job_url(job_id), **({REPLAYED_HEADER: "true"} if replayed else {})}


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


def form_component(component: str) -> str:
    """The multipart body's component beside a workflow's JSON request: CameraAngleRequest -> CameraAngleForm."""
    return component.removesuffix("Request") + "Form"


def _request_body(json_schema: dict[str, Any], form_schema: dict[str, Any], encoding: dict[str, Any], **extra: Any):
    return {
        "required": True,
        **extra,
        "content": {
            "application/json": {"schema": json_schema},
            FORM_MEDIA_TYPE: {"schema": form_schema, "encoding": encoding},
        },
    }


_IMAGES_NOTE = (
    "\n\nImages are named by URI, or sent with the request: as data: URIs in the JSON body, or as file parts of "
    "a multipart/form-data body. Each inline image is checked (PNG, JPEG or WEBP, within the size limits) and "
    "stored in S3 before the job is queued; the job's parameters then name it by its s3:// URI. A refused image "
    "is a 422 naming its field (images.1 is the second of images); an image over the byte limit is a 413 "
    "(image_too_large) naming its field, and so is a body over the size limit (request_entity_too_large)."
    "\n\nAn Idempotency-Key header makes a retry safe: the same key with the same request answers the first "
    "one's job (Idempotent-Replayed: true) and queues nothing more, from any API host, even when both arrive at "
    "once (409 idempotency_key_in_use if the first is still being submitted after a few seconds); with a "
    "different request it is a 422 naming Idempotency-Key."
    "\n\nEach API key may submit GPUORCH_RATE_LIMIT_PER_MINUTE jobs a minute, in bursts of "
    "GPUORCH_RATE_LIMIT_BURST, across every API host: past it, 429 with Retry-After. When the GPU queue holds "
    "GPUORCH_MAX_BACKLOG jobs, 503 (backlog_full) with Retry-After. When the key's owner has spent its monthly cap "
    "(the key's own, or GPUORCH_OWNER_MONTHLY_CAP_USD), 402 (spend_cap_reached) with Retry-After until the month "
    "ends. None of these records or queues anything."
    "\n\nBeside the parameters, `webhook` (a public https:// URL) and `webhook_events` (default: every status "
    "change) name where the job's events are POSTed, signed the Standard Webhooks way with the API key's webhook "
    "secret; without them, the key's default webhook, if it has one."
)


def _submission_answers(blp: Blueprint, *errors: int) -> Callable[[Callable], Callable]:
    """A submission's documented answers: 202 accepted, 200 when it asked to wait and the job ended, and `errors`."""

    def document(view: Callable) -> Callable:
        view = error_responses(blp, *errors)(view)
        view = blp.alt_response(200, schema=JobSchema, description=_WAITED,
                                headers={**_ACCEPTED_HEADERS, "Preference-Applied": _APPLIED})(view)
        return blp.response(202, JobAcceptedSchema, description="Accepted and queued.",
                            headers=_ACCEPTED_HEADERS)(view)

    return document


def _submit_view(blp: Blueprint, workflow: Workflow, component: str) -> type[MethodView]:
    name = workflow.name

    # The body is read here and validated once, by the workflow (gpuorch.jobs.submission); the document
    # shows schemas generated from the workflow's own JSON Schema, so neither is written twice.
    @blp.doc(
        summary=f"Submit a {name} job",
        description=workflow.description + _IMAGES_NOTE,
        requestBody=_request_body(
            _ref(component), _ref(form_component(component)), form_encoding(image_fields(workflow))
        ),
        parameters=[IDEMPOTENCY_PARAMETER, PREFER],
    )
    @_submission_answers(blp, *SUBMISSION_ERRORS)
    def post(self):
        return accept(name)

    return type(f"Submit{component}", (MethodView,), {"post": post})


def _submit_any_view(blp: Blueprint, components: Mapping[str, str], encoding: dict[str, Any]) -> type[MethodView]:
    listed = ", ".join(f"{name}: {component}" for name, component in components.items())

    @blp.doc(
        summary="Submit a job of the named workflow",
        description="The same as POST /api/v1/{name}/jobs for that workflow: the body is validated against the "
        "named workflow's request schema (listed by GET /api/v1/workflows/{name}), and the answers are the same."
        + _IMAGES_NOTE,
        # anyOf: which schema applies is decided by the path, not by the body.
        requestBody=_request_body(
            {"anyOf": [_ref(c) for c in components.values()]},
            {"anyOf": [_ref(form_component(c)) for c in components.values()]},
            encoding,
            description=f"The named workflow's request ({listed}).",
        ),
        parameters=[IDEMPOTENCY_PARAMETER, PREFER],
    )
    @_submission_answers(blp, 404, *SUBMISSION_ERRORS)  # 404: no workflow of that name
    def post(self, name: str):
        return accept(name)

    return type("SubmitAnyWorkflow", (MethodView,), {"post": post})


def submissions_blueprint(workflows: Iterable[Workflow]) -> tuple[Blueprint, dict[str, dict[str, Any]]]:
    """The blueprint with a submit route per workflow and one for any, and the request-body schemas they use."""
    blp = Blueprint(BLUEPRINT, __name__, url_prefix="/api/v1", description="Submit jobs; each is queued for the GPU.")
    schemas: dict[str, dict[str, Any]] = {}
    components: dict[str, str] = {}
    encoding: dict[str, Any] = {}
    for workflow in workflows:
        images = image_fields(workflow)
        json_body = json_body_schema(workflow.json_schema(), images)
        # The schema's title names the workflow's request (CameraAngleRequest): it becomes the component name.
        component = components[workflow.name] = json_body["title"]
        schemas[component] = json_body
        schemas[form_component(component)] = form_body_schema(json_body, images, form_component(component))
        encoding |= form_encoding(images)
        blp.add_url_rule(f"/{workflow.name}/jobs", endpoint(workflow.name), _submit_view(blp, workflow, component))
    name_parameter = {
        "in": "path",
        "name": "name",
        "description": "The workflow to run.",
        "schema": {"type": "string", "enum": list(components)},
    }
    blp.add_url_rule(
        "/workflows/<string:name>/jobs",
        ANY_WORKFLOW_ENDPOINT,
        _submit_any_view(blp, components, encoding),
        parameters=[name_parameter],
    )
    return blp, schemas
