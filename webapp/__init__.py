"""The REST API: `create_app(settings)` builds the Flask app that accepts, lists and reports GPU jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from flask import Flask

import gpuorch
from gpuorch.celery_app import GpuorchCelery
from gpuorch.celery_app import app as default_celery_app
from gpuorch.jobs.store import utc_now
from gpuorch.settings import Settings
from webapp.context import EXTENSION, ApiContext
from webapp.errors import GpuorchApi, register_error_handlers
from webapp.health import HealthChecker
from webapp.metrics import RequestMetrics
from webapp.outputs import OutputLinks
from webapp.request_body import image_capacity, request_body_limit
from webapp.views import costs, deadletters, jobs, service, workflows
from webapp.views.submissions import submissions_blueprint

API_DESCRIPTION = """\
Submit ComfyUI jobs (Qwen-Image-Edit, camera-angle changes) to an on-demand GPU and follow them.

A submission answers 202 with the job's URL; poll it until the status is succeeded, failed or cancelled.
Every error, whatever its status, has the body
`{"error": {"code": "<machine code>", "message": "<for a human>", "fields": {"<field>": ["<reason>", ...]}}}`,
where `fields` appears only when particular fields are to blame.
"""


def create_app(settings: Settings | None = None, *, celery_app: GpuorchCelery | None = None,
               clock: Callable[[], datetime] = utc_now) -> Flask:
    """The API app; `settings` defaults to the environment's, `celery_app` to gpuorch's own; `clock` tells the
    time (for the cost report and the month's spend)."""
    settings = settings if settings is not None else Settings.from_env()
    celery_app = celery_app if celery_app is not None else default_celery_app
    # The API publishes jobs, so its broker, queues and job table must be the ones these settings name.
    celery_app.use_settings(settings)

    catalog = celery_app.services.workflows
    # Images may come inside the body (data: URIs, file parts): by default it holds the most any workflow takes.
    body_limit = settings.max_request_bytes or request_body_limit(
        settings.max_input_bytes, max((image_capacity(workflow) for workflow in catalog), default=0)
    )

    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=body_limit,
        # The params part of a form may hold data: URIs too; werkzeug would cap it at 500 kB.
        MAX_FORM_MEMORY_SIZE=body_limit,
        API_TITLE="gpuorch",
        API_VERSION=gpuorch.__version__,
        # 3.1: the workflows' request schemas use JSON Schema's if/then, which OpenAPI 3.0 lacks.
        OPENAPI_VERSION="3.1.0",
        API_SPEC_OPTIONS={"info": {"description": API_DESCRIPTION}},
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
    )
    # One Api per app: it holds the app's OpenAPI document, which differs with the workflow catalogue.
    api = GpuorchApi(app)
    register_error_handlers(app)
    app.extensions[EXTENSION] = ApiContext(
        celery=celery_app,
        health=HealthChecker(settings, clock=clock),
        outputs=OutputLinks.from_settings(settings),
        clock=clock,
    )

    submissions, request_schemas = submissions_blueprint(catalog)
    for name, schema in request_schemas.items():
        api.spec.components.schema(name, component=schema)
    api.register_blueprint(service.blp)
    api.register_blueprint(workflows.blp)
    api.register_blueprint(submissions)
    api.register_blueprint(jobs.blp)
    api.register_blueprint(costs.blp)
    api.register_blueprint(deadletters.blp)
    register_metrics(app, RequestMetrics(workflow.name for workflow in catalog))
    return app


METRICS_PATH = "/metrics"
METRICS_ENDPOINT = "metrics"


def register_metrics(app: Flask, metrics: RequestMetrics) -> None:
    """Time every request, count submissions, and serve Prometheus's GET /metrics (outside the OpenAPI
    document). The one place /metrics is routed: an access check can allow or guard METRICS_ENDPOINT."""
    metrics.init_app(app)
    app.add_url_rule(METRICS_PATH, METRICS_ENDPOINT, metrics.view, methods=["GET"])
