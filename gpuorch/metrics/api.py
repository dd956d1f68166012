"""The API's figures: submissions by workflow and outcome, and request latency by method, route and status."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# A workflow name not in the catalogue is counted under this one, so a client cannot grow the label set.
UNKNOWN_WORKFLOW = "unknown"
# A request no route matched (a 404 on an arbitrary path) is timed under this route.
UNMATCHED_ROUTE = "unmatched"

ACCEPTED, INVALID, TOO_LARGE, NO_SUCH_WORKFLOW, UNAUTHORIZED, RATE_LIMITED, UNAVAILABLE, ERROR = (
    "accepted", "invalid", "too_large", "unknown_workflow", "unauthorized", "rate_limited", "unavailable", "error")
SUBMISSION_OUTCOMES = (ACCEPTED, INVALID, TOO_LARGE, NO_SUCH_WORKFLOW, UNAUTHORIZED, RATE_LIMITED, UNAVAILABLE, ERROR)


def submission_outcome(status: int) -> str:
    """A submission's answer as an outcome class: accepted, or why it was refused."""
    if 200 <= status < 300:
        return ACCEPTED
    if status in (400, 422):
        return INVALID  # a bad body, parameter or image
    if status == 413:
        return TOO_LARGE
    if status == 404:
        return NO_SUCH_WORKFLOW
    if status in (401, 403):
        return UNAUTHORIZED  # no key, an unknown or revoked one
    if status == 429:
        return RATE_LIMITED  # the key's submission rate
    if status == 503:
        return UNAVAILABLE  # the backlog is full, or the queue or the job table could not be reached
    return ERROR


class ApiMetrics:
    """The API's metrics, registered in `registry` (one per app, so apps built by tests do not clash)."""

    def __init__(self, registry: CollectorRegistry):
        self.submissions = Counter(
            "gpuorch_api_submissions", "Job submissions by workflow and outcome (accepted, or the refusal's class).",
            ["workflow", "outcome"], registry=registry,
        )
        self.request_duration = Histogram(
            "gpuorch_api_request_duration_seconds", "API request latency by method, route template and status code.",
            ["method", "route", "status"], registry=registry,
        )
