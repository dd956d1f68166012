"""GET /api/v1/workflows and GET /api/v1/workflows/{name}: what each workflow does and the request it takes."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from gpuorch.workflows import Workflow
from webapp.context import current
from webapp.errors import error_responses
from webapp.request_schemas import request_json_schema
from webapp.schemas import WorkflowListSchema, WorkflowSchema
from webapp.views.submissions import submit_url

blp = Blueprint(
    "workflows", __name__, url_prefix="/api/v1", description="The workflows: what each does and the request it takes."
)


def describe(workflow: Workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "description": workflow.description,
        "submit_url": submit_url(workflow.name),
        "request_schema": request_json_schema(workflow),
    }


@blp.route("/workflows")
class WorkflowListView(MethodView):
    @blp.response(200, WorkflowListSchema)
    def get(self):
        """Every workflow: its description, where to submit it, and the JSON Schema of its request"""
        return {"workflows": [describe(workflow) for workflow in current().services.workflows]}


@blp.route("/workflows/<string:name>")
class WorkflowView(MethodView):
    @blp.response(200, WorkflowSchema)
    @error_responses(blp, 404)
    def get(self, name: str):
        """One workflow: its description, where to submit it, and the JSON Schema of its request"""
        return describe(current().workflow(name))
