"""The API's Prometheus side: timing every request, counting submissions, and the /metrics exposition."""

from __future__ import annotations

import time
from collections.abc import Collection

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry

from gpuorch.metrics.api import UNKNOWN_WORKFLOW, UNMATCHED_ROUTE, ApiMetrics, submission_outcome
from gpuorch.metrics.exposition import exposition_registry, render

SUBMIT_ENDPOINT_PREFIX = "submissions."


class RequestMetrics:
    """Flask hooks that record each request; `view` answers GET /metrics (the sum over gunicorn's workers)."""

    def __init__(self, workflows: Collection[str], registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ApiMetrics(self.registry)
        self.workflows = frozenset(workflows)

    def init_app(self, app: Flask) -> None:
        app.before_request(self._started)
        app.after_request(self._finished)

    def _started(self) -> None:
        g.metrics_started = time.perf_counter()

    def _finished(self, response: Response) -> Response:
        started = g.pop("metrics_started", None)
        # The route's template, not the path: job ids in paths would make a series per job.
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        if started is not None:
            self.metrics.request_duration.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started)
        if (request.endpoint or "").startswith(SUBMIT_ENDPOINT_PREFIX):
            self.metrics.submissions.labels(self.workflow_of(request.endpoint, request.view_args or {}),
                                            submission_outcome(response.status_code)).inc()
        return response

    def workflow_of(self, endpoint: str, view_args: dict) -> str:
        """The submitted workflow (from the path of the generic route, or the workflow's own route's endpoint)."""
        name = view_args.get("name") or endpoint.removeprefix(SUBMIT_ENDPOINT_PREFIX).removeprefix("submit_")
        return name if name in self.workflows else UNKNOWN_WORKFLOW

    def view(self) -> Response:
        body, content_type = render(exposition_registry(self.registry))
        return Response(body, content_type=content_type)
