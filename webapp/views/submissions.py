"""Submitting jobs: POST /api/v1/{workflow}/jobs per workflow, and POST /api/v1/workflows/{name}/jobs for any."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from flask import request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.jobs.store import Job
from gpuorch.workflows import Workflow
from webapp.context import current
from webapp.errors import ApiError
from webapp.schemas import JobAcceptedSchema, job_url

BLUEPRINT = "submissions"

_LOCATION = {"description": "URL of the new job.", "schema": {"type": "string"}}


# The generic route's endpoint; a workflow's own is submit_<name>, so the two never clash.
ANY_WORKFLOW_ENDPOINT = "submit"


def endpoint(workflow_name: str) -> str:
    return f"submit_{workflow_name}"


def submit_url(workflow_name: str) -> str:
    return url_for(f"{BLUEPRINT}.{endpoint(workflow_name)}")


def json_object_body() -> dict[str, Any]:
    """The request body as a JSON object; a 400 ApiError when it is not JSON or not an object."""
    if not request.is_json:
        raise ApiError(400, "invalid_json", "The request body must be JSON, sent as Content-Type: application/json.")
    try:
        # Bytes, so malformed UTF-8 is refused rather than replaced; NaN and Infinity are not JSON.
        body = json.loads(request.get_data(), parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", f"The request body must be a JSON object, not {json_type(body)}.")
    return body


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def accept(workflow_name: str) -> tuple[Job, int, dict[str, str]]:
    """Submit the request body as a job of the workflow: the 202 answer, with the job's URL as Location."""
    job = current().submit(workflow_name, json_object_body())
    return job, 202, {"Location": job_url(job.job_id)}


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


def _submit_view(blp: Blueprint, workflow: Workflow, component: str) -> type[MethodView]:
    name = workflow.name

    # The body is read here and validated once, by the workflow (gpuorch.submission); the document
    # shows the workflow's own JSON Schema, so neither is written twice.
    @blp.doc(
        summary=f"Submit a {name} job",
        description=workflow.description,
        requestBody={"required": True, "content": {"application/json": {"schema": _ref(component)}}},
    )
    @blp.response(202, JobAcceptedSchema, description="Accepted and queued.", headers={"Location": _LOCATION})
    @blp.alt_response(400, response=HTTPStatus.BAD_REQUEST.name)
    @blp.alt_response(422, response=HTTPStatus.UNPROCESSABLE_ENTITY.name)
    @blp.alt_response(503, response=HTTPStatus.SERVICE_UNAVAILABLE.name)
    def post(self):
        return accept(name)

    return type(f"Submit{component}", (MethodView,), {"post": post})


def _submit_any_view(blp: Blueprint, components: Mapping[str, str]) -> type[MethodView]:
    listed = ", ".join(f"{name}: {component}" for name, component in components.items())

    @blp.doc(
        summary="Submit a job of the named workflow",
        description="The same as POST /api/v1/{name}/jobs for that workflow: the body is validated against the "
        "named workflow's request schema (listed by GET /api/v1/workflows/{name}), and the answers are the same.",
        requestBody={
            "required": True,
            "description": f"The named workflow's request ({listed}).",
            # anyOf: which schema applies is decided by the path, not by the body.
            "content": {"application/json": {"schema": {"anyOf": [_ref(c) for c in components.values()]}}},
        },
    )
    @blp.response(202, JobAcceptedSchema, description="Accepted and queued.", headers={"Location": _LOCATION})
    @blp.alt_response(400, response=HTTPStatus.BAD_REQUEST.name)
    @blp.alt_response(404, response=HTTPStatus.NOT_FOUND.name)
    @blp.alt_response(422, response=HTTPStatus.UNPROCESSABLE_ENTITY.name)
    @blp.alt_response(503, response=HTTPStatus.SERVICE_UNAVAILABLE.name)
    def post(self, name: str):
        # An unknown workflow is 404 whatever its body holds.
        current().workflow(name)
        return accept(name)

    return type("SubmitAnyWorkflow", (MethodView,), {"post": post})


def submissions_blueprint(workflows: Iterable[Workflow]) -> tuple[Blueprint, dict[str, dict[str, Any]]]:
    """The blueprint with a submit route per workflow and one for any, and the request-body schemas they use."""
    blp = Blueprint(BLUEPRINT, __name__, url_prefix="/api/v1", description="Submit jobs; each is queued for the GPU.")
    schemas: dict[str, dict[str, Any]] = {}
    components: dict[str, str] = {}
    for workflow in workflows:
        schema = workflow.json_schema()
        # The schema's title names the workflow's request (CameraAngleRequest): it becomes the component name.
        component = components[workflow.name] = schema["title"]
        schemas[component] = schema
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
        _submit_any_view(blp, components),
        parameters=[name_parameter],
    )
    return blp, schemas
