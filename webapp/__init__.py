"""The REST API: `create_app(settings)` builds the Flask app that accepts, lists and reports GPU jobs."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

from flask import Flask

import gpuorch
from gpuorch.access.backlog import BacklogGauge
from gpuorch.access.keys import KeyCache, KeyStore
from gpuorch.access.ratelimit import RateLimiter
from gpuorch.access.spend import SpendGauge
from gpuorch.celery.app import GpuorchCelery, create_celery_app
from gpuorch.celery.names import gpu_queues
from gpuorch.clock import utc_now
from gpuorch.jobs.watch import JobWatch
from gpuorch.settings import Settings
from lifecycle.facade import GpuLifecycle, seconds_to_next_month
from webapp import auth
from webapp.auth import OPERATOR, USER
from webapp.context import EXTENSION, ApiContext
from webapp.errors import GpuorchApi, register_error_handlers
from webapp.health import HealthChecker
from webapp.metrics import RequestMetrics
from gpuorch.jobs.outputs import OutputLinks
from webapp.request_body import ApiRequest, image_capacity, request_body_limit
from webapp.views import batches, costs, deadletters, deliveries, events, gpu, jobs, service, workflows
from webapp.views.submissions import submissions_blueprint

API_DESCRIPTION = """\
Submit ComfyUI jobs (Qwen-Image-Edit, camera-angle changes) to an on-demand GPU and follow them.

A submission answers 202 with the job's URL. To hear how it ends: wait for it (`GET /api/v1/jobs/{id}?wait=60`, or
`Prefer: wait=60` on the submission), follow its event stream (`GET /api/v1/jobs/{id}/events`, Server-Sent Events),
or name a webhook. A queued job's record says where it is (phase, queue_position) and when it should start and
finish (eta); a submission's record keeps what it was expected to take and cost (estimate).
Every error, whatever its status, has the body
`{"error": {"code": "<machine code>", "message": "<for a human>", "fields": {"<field>": ["<reason>", ...]}}}`,
where `fields` appears only when particular fields are to blame.

Every route but `/`, `/health` and this document needs an API key (`gpuorch keys create`), sent as
`Authorization: Bearer <key>`: without one, or with an unknown or revoked one, 401. Operator routes (the GPU,
costs) need an operator key: 403 for another. A user key sees only its owner's jobs; an operator key every job.
"""


def create_app(settings: Settings | None = None, *, celery_app: GpuorchCelery | None = None,
               clock: Callable[[], datetime] = utc_now, monotonic: Callable[[], float] = time.monotonic) -> Flask:
    """The API app; `settings` defaults to the environment's; `celery_app`, which publishes the jobs, to one built
    from the settings; `clock` tells the time (for the cost report, the month's spend and the rate limit);
    `monotonic` times the key and backlog caches."""
    settings = settings if settings is not None else Settings.from_env()
    celery_app = celery_app if celery_app is not None else create_celery_app(settings)

    known = celery_app.services.workflows
    # Images may come inside the body (data: URIs, file parts): by default it holds the most any workflow takes.
    body_limit = settings.max_request_bytes or request_body_limit(
        settings.max_input_bytes, max((image_capacity(workflow) for workflow in known), default=0)
    )

    # No static folder: every route is an API route, and each needs a key unless listed in auth.OPEN_ENDPOINTS.
    app = Flask(__name__, static_folder=None)
    # Its body reading refuses a chunked body over MAX_CONTENT_LENGTH (413) and keeps a form field's bytes.
    app.request_class = ApiRequest
    app.config.update(
        MAX_CONTENT_LENGTH=body_limit,
        # The params part of a form may hold data: URIs too; werkzeug would cap it at 500 kB.
        MAX_FORM_MEMORY_SIZE=body_limit,
        API_TITLE="gpuorch",
        API_VERSION=gpuorch.__version__,
        # 3.1: the workflows' request schemas use JSON Schema's if/then, which OpenAPI 3.0 lacks.
        OPENAPI_VERSION="3.1.0",
        API_SPEC_OPTIONS={"info": {"description": API_DESCRIPTION}, "security": auth.SECURITY},
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
    )
    # One Api per app: it holds the app's OpenAPI document, which differs with the workflows.
    api = GpuorchApi(app, spec_kwargs={"extra_plugins": [auth.access_responses(app)]})
    register_error_handlers(app)
    services = celery_app.services
    lifecycle = GpuLifecycle(settings, services.aws.dynamodb, clock=clock)
    app.extensions[EXTENSION] = ApiContext(
        celery=celery_app,
        health=HealthChecker(settings, timeout=settings.health_timeout_seconds, clock=clock),
        outputs=OutputLinks.from_settings(settings),
        keys=KeyCache(KeyStore(services.aws.dynamodb, settings.key_table), ttl_s=settings.key_cache_seconds,
                      monotonic=monotonic),
        limiter=RateLimiter(services.aws.dynamodb, settings.control_table, clock=lambda: clock().timestamp()),
        backlog=BacklogGauge(services.aws.sqs,
                             lambda: [services.aws.queue_url(queue) for queue in gpu_queues(settings)],
                             ttl_s=settings.backlog_check_seconds, monotonic=monotonic),
        spend=SpendGauge(lambda owner: lifecycle.owner_month_spend(services.jobs, owner, clock()),
                         ttl_s=settings.spend_check_seconds, until_reset=lambda: seconds_to_next_month(clock()),
                         monotonic=monotonic),
        lifecycle=lifecycle,
        # Requests waiting for jobs (?wait=, Prefer: wait=, the event stream) share one batched read per process.
        watch=JobWatch(services.jobs.get_many, interval_s=settings.wait_poll_seconds, capacity=settings.api_waiters),
        clock=clock,
    )
    auth.install(app, api)

    submissions, request_schemas = submissions_blueprint(known)
    for name, schema in request_schemas.items():
        api.spec.components.schema(name, component=schema)
    batches.register_schemas(api, known)
    # Each blueprint with the key it needs (every route needs one, but for auth.OPEN_ENDPOINTS).
    for blueprint, role in (
        (service.blp, USER),
        (workflows.blp, USER),
        (submissions, USER),
        (batches.blp, USER),
        (jobs.blp, USER),
        (deliveries.blp, USER),
        (events.blp, USER),
        (costs.blp, OPERATOR),
        (gpu.blp, OPERATOR),
        (deadletters.blp, OPERATOR),
    ):
        auth.register(app, api, blueprint, role)
    # Outside any blueprint, so the auth check asks an operator key of it (Prometheus sends it as a bearer token).
    register_metrics(app, RequestMetrics(workflow.name for workflow in known))
    return app


METRICS_PATH = "/metrics"
METRICS_ENDPOINT = "metrics"


def register_metrics(app: Flask, metrics: RequestMetrics) -> None:
    """Time every request, count submissions, and serve Prometheus's GET /metrics (outside the OpenAPI
    document). The one place /metrics is routed: an access check can allow or guard METRICS_ENDPOINT."""
    metrics.init_app(app)
    app.add_url_rule(METRICS_PATH, METRICS_ENDPOINT, metrics.view, methods=["GET"])
