"""Health of what the API depends on: the GPU queue, the job table, the bucket, the GPU lifecycle and the GPU
instances (their workers' and ComfyUI's heartbeats), probed in parallel."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gpuorch.aws.clients import AwsClients, probe_config
from gpuorch.aws.sqs import queue_depth
from gpuorch.clock import utc_now
from gpuorch.errors import Unavailable
from gpuorch.jobs.store import STATUS_INDEX
from gpuorch.settings import Settings
from lifecycle.facade import REFUSED, GpuLifecycle, LifecycleStatus

log = logging.getLogger(__name__)

# BLOCKED: the component works, but the GPU lifecycle refused a start (jobs are still accepted and wait).
# STALE: no lifecycle check ran lately (gpu), or a running GPU instance's worker or ComfyUI stopped reporting
# (gpu_instances): jobs are accepted, but wait.
# Neither is a 503: the API itself works, and a load balancer must keep sending it submissions.
OK, BLOCKED, STALE, ERROR = "ok", "blocked", "stale", "error"
COMPONENT_STATES = (OK, BLOCKED, STALE, ERROR)
USABLE_TABLE_STATES = frozenset({"ACTIVE", "UPDATING"})


@dataclass(frozen=True)
class ComponentState:
    status: str
    latency_ms: float
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"status": self.status, "latency_ms": self.latency_ms}
        if self.error is not None:
            answer["error"] = self.error
        if self.detail:
            answer["detail"] = self.detail
        return answer


@dataclass(frozen=True)
class Finding:
    """What a probe saw when it is not plainly ok (a probe returns its detail alone when it is)."""

    status: str
    detail: dict[str, Any]


class ProbeFailed(Unavailable):
    """The service answered, but not with what the API needs."""


def summarize(components: Mapping[str, ComponentState]) -> tuple[dict[str, Any], int]:
    """The health document and its HTTP status: 200 when no component failed (a blocked GPU start is not a
    failure of the API: it still accepts jobs), 503 otherwise."""
    healthy = all(state.status != ERROR for state in components.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "components": {name: state.as_dict() for name, state in sorted(components.items())},
    }
    return body, 200 if healthy else 503


def run_probe(probe: Callable[[], dict[str, Any] | Finding]) -> ComponentState:
    """Run one probe; any exception becomes an error state carrying its reason."""
    started = time.perf_counter()
    try:
        seen = probe()
    except Exception as exc:  # noqa: BLE001 - a health check reports every failure rather than raising it
        return ComponentState(ERROR, _elapsed_ms(started), error=f"{type(exc).__name__}: {exc}")
    if isinstance(seen, Finding):
        return ComponentState(seen.status, _elapsed_ms(started), detail=seen.detail)
    return ComponentState(OK, _elapsed_ms(started), detail=seen)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


class HealthChecker:
    """Probes SQS, DynamoDB, S3 and the GPU lifecycle's records with clients of their own: short timeouts and
    no retries, so a dead endpoint is reported within seconds instead of after the job clients' patient back-off."""

    def __init__(self, settings: Settings, *, timeout: float, workers: int = 8,
                 clock: Callable[[], datetime] = utc_now):
        self.settings = settings
        self.timeout = timeout
        self.clock = clock
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health")

    @functools.cached_property
    def clients(self) -> AwsClients:
        return AwsClients(self.settings, probe_config(self.timeout))

    def probes(self) -> dict[str, Callable[[], dict[str, Any]]]:
        clients = self.clients
        lifecycle = GpuLifecycle(self.settings, clients.dynamodb, clock=self.clock)
        return {
            "sqs": functools.partial(probe_sqs, clients.sqs, self.settings.gpu_queue),
            "dynamodb": functools.partial(probe_dynamodb, clients.dynamodb, self.settings.job_table),
            "s3": functools.partial(probe_s3, clients.s3, self.settings.bucket),
            "gpu": functools.partial(probe_gpu, lifecycle),
            "gpu_instances": functools.partial(probe_gpu_instances, lifecycle),
        }

    def check(self) -> tuple[dict[str, Any], int]:
        """Run every probe at once; one that has not answered by the deadline counts as failed."""
        futures = {name: self._executor.submit(run_probe, probe) for name, probe in self.probes().items()}
        # Three round trips (the GPU probe: the status, the open runs, the month's runs) plus slack: the
        # clients' own timeouts should fire first.
        deadline = 3 * self.timeout + 1
        concurrent.futures.wait(futures.values(), timeout=deadline)
        components = {
            name: future.result()
            if future.done()
            else ComponentState(ERROR, deadline * 1000, error=f"no answer within {deadline:g}s")
            for name, future in futures.items()
        }
        body, status = summarize(components)
        if status != 200:
            failed = {name: state.error for name, state in components.items() if state.status != OK}
            log.warning("health degraded: %s", failed)
        return body, status


def probe_sqs(sqs, queue: str) -> dict[str, Any]:
    depth = queue_depth(sqs, sqs.get_queue_url(QueueName=queue)["QueueUrl"])
    return {"queue": queue, "messages": depth.visible, "in_flight": depth.in_flight}


def probe_dynamodb(dynamodb, table_name: str) -> dict[str, Any]:
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    state = table.get("TableStatus")
    if state not in USABLE_TABLE_STATES:
        raise ProbeFailed(f"table {table_name} is {state}")
    # Listing jobs needs the status index; a table without it accepts jobs but cannot list them.
    indexes = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    if STATUS_INDEX not in indexes:
        raise ProbeFailed(f"table {table_name} lacks the index {STATUS_INDEX}")
    return {"table": table_name, "table_status": state}


def probe_s3(s3, bucket: str) -> dict[str, Any]:
    s3.head_bucket(Bucket=bucket)
    return {"bucket": bucket}


def gpu_finding(status: LifecycleStatus | None, month_spend_usd: float, monthly_budget_usd: float, *,
                now: datetime | None = None, stale_after_s: float | None = None) -> Finding:
    """The GPU component: `stale` when the last lifecycle check is older than `stale_after_s` (the control
    worker or beat is down, so no GPU starts for new jobs), `blocked` with the reason when it refused a start
    (e.g. the monthly budget), else ok; either way when that check ran, this month's spend beside the budget, and
    the market of the last start with the last fallback to on-demand."""
    blocked = status.blocked_reason if status is not None else None
    detail = {
        "checked_at": status.checked_at if status is not None else None,
        "blocked": blocked,
        "month_spend_usd": round(month_spend_usd, 2),
        "monthly_budget_usd": monthly_budget_usd or None,
        "market": status.market if status is not None else None,
    }
    if status is not None and now is not None and stale_after_s is not None:
        age = (now - datetime.fromisoformat(status.checked_at)).total_seconds()
        if age > stale_after_s:
            # Only said when stale, so a healthy answer keeps its shape.
            detail["stale"] = (f"the last lifecycle check ran {age:.0f} s ago (limit {stale_after_s:.0f} s): "
                               "are the control worker and beat running?")
            return Finding(STALE, detail)
    return Finding(BLOCKED if blocked else OK, detail)


def probe_gpu(lifecycle: GpuLifecycle) -> Finding:
    now = lifecycle.clock()
    return gpu_finding(lifecycle.last_check(), lifecycle.month_spend(now), lifecycle.settings.monthly_budget_usd,
                       now=now, stale_after_s=lifecycle.check_stale_after_s())


def probe_gpu_instances(lifecycle: GpuLifecycle) -> Finding:
    """Each GPU instance's state (as the last lifecycle check saw it: no EC2 call per request), its worker's and
    ComfyUI's last heartbeat, and why it cannot serve if it cannot; stale when a running one's heartbeats are
    older than the lifecycle's own limit, else blocked when one cannot serve (it is held: jobs wait)."""
    stale, detail = lifecycle.instances_health(lifecycle.clock())
    refused = any(host["health"] == REFUSED for host in detail["instances"])
    return Finding(STALE if stale else BLOCKED if refused else OK, detail)
