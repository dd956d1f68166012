"""GET / (what this service offers) and GET /health (whether its queue, table and bucket answer, whether the
GPU may start, and how its instances, workers and ComfyUI are)."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

import gpuorch
from webapp.context import current
from webapp.auth import NO_KEY
from webapp.schemas import HealthSchema, ServiceInfoSchema
from webapp.views.submissions import submit_url

blp = Blueprint("service", __name__, description="What this service offers, and whether it can work.")


@blp.route("/")
class ServiceInfoView(MethodView):
    @blp.doc(security=NO_KEY)
    @blp.response(200, ServiceInfoSchema)
    def get(self):
        """Service name, version, workflows and where to submit them"""
        workflows = [
            {"name": workflow.name, "description": workflow.description, "submit_url": submit_url(workflow.name)}
            for workflow in current().services.workflows
        ]
        links = {
            "self": url_for("service.ServiceInfoView"),
            "health": url_for("service.HealthView"),
            "workflows": url_for("workflows.WorkflowListView"),
            "jobs": url_for("jobs.JobListView"),
            "costs": url_for("costs.CostView"),
            "openapi": url_for("api-docs.openapi_json"),
            "docs": url_for("api-docs.openapi_swagger_ui"),
        }
        return {"name": "gpuorch", "version": gpuorch.__version__, "workflows": workflows, "links": links}


@blp.route("/health")
class HealthView(MethodView):
    @blp.doc(security=NO_KEY)
    @blp.response(200, HealthSchema, description="Every component answered (gpu may be blocked: jobs still queue).")
    @blp.alt_response(503, schema=HealthSchema, description="Some component failed; each names why.")
    def get(self):
        """Check SQS, DynamoDB, S3, the GPU lifecycle and the GPU instances in parallel, each with a short timeout

        The gpu component shows the last lifecycle check's time, why it refused to start a GPU if it did (its
        status is then blocked, e.g. by the monthly budget: jobs are still accepted and wait, so this alone is
        not a 503), and this month's GPU spend beside the budget. The gpu_instances component lists each GPU
        instance's state (as the last lifecycle check saw it), its GPU worker's last heartbeat and when its
        ComfyUI last answered, with a verdict: a stopped GPU is off, which is normal; a running one whose worker
        or ComfyUI stopped reporting makes the component stale (jobs wait; not a 503); one that cannot serve (its
        worker refused to start, or it was not ready within the boot grace) is refused, names why, and makes the
        component blocked: the lifecycle holds it stopped until its configuration changes or an operator starts it.
        """
        body, status = current().health.check()
        return body, status
