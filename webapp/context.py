"""What the routes reach through the Flask app: the Celery app that publishes, its services, the health checker,
the signer of output download links, the clock, the GPU lifecycle's records, the API keys and the limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from flask import current_app

from gpuorch.access.backlog import BacklogGauge
from gpuorch.access.keys import ApiKey, KeyCache
from gpuorch.access.ratelimit import Limit, RateLimiter
from gpuorch.celery_app import GpuorchCelery
from gpuorch.errors import UnknownWorkflow
from gpuorch.jobs.store import Job, utc_now
from gpuorch.services import Services
from gpuorch.tasks import task_for
from gpuorch.workflows import UnknownWorkflowError, Workflow
from webapp.health import HealthChecker
from lifecycle.check import LifecycleStatus, StatusStore
from lifecycle.costs import Period, period_costs, run_log_for
from lifecycle.instances import InstancePool
from webapp.outputs import OutputLinks

log = logging.getLogger(__name__)

EXTENSION = "gpuorch"


@dataclass(frozen=True)
class ApiContext:
    celery: GpuorchCelery
    health: HealthChecker
    outputs: OutputLinks
    keys: KeyCache
    limiter: RateLimiter
    backlog: BacklogGauge
    #: The GPU pool as `gpuorch gpu` reaches it, built on first use (operator routes only).
    gpu_pool: Callable[[], InstancePool]
    clock: Callable[[], datetime] = utc_now

    @property
    def services(self) -> Services:
        return self.celery.services

    def workflow(self, name: str) -> Workflow:
        """The catalogued workflow of that name; UnknownWorkflow (answered 404) when there is none."""
        try:
            return self.services.workflows.get(name)
        except UnknownWorkflowError as exc:
            raise UnknownWorkflow(f"No workflow is named {name!r}; known: {', '.join(exc.known)}.") from None

    def submit(self, workflow: str, params: dict[str, Any], owner: str) -> Job:
        """Validate, record and publish one job of `owner` (gpuorch.submission.accept, through the workflow's
        task)."""
        # task_for names the task; looking it up on this Celery app binds it to this app's broker and services.
        task = self.celery.tasks[task_for(workflow).name]
        return task.submit(workflow, params, source="api", owner=owner)

    def admit(self, key: ApiKey) -> None:
        """Let one submission of `key` through the limits: BacklogFull when the GPU queue is full (nothing
        spent), RateLimited when the key's allowance is spent."""
        settings = self.services.settings
        self.backlog.check(settings.max_backlog)
        per_minute = key.rate_per_minute if key.rate_per_minute is not None else settings.rate_limit_per_minute
        self.limiter.spend(key.key_id, Limit(per_minute, key.burst or settings.rate_limit_burst))

    def visible_job(self, job_id: str, key: ApiKey) -> Job | None:
        """The job if the key may see it (its owner's, or any for an operator key); None otherwise, so another
        owner's job reads exactly like a missing one."""
        job = self.services.jobs.get(job_id)
        if job is None or (not key.operator and job.owner != key.owner):
            return None
        return job

    def lifecycle_status(self) -> LifecycleStatus | None:
        """The last lifecycle check's outcome; None when there was none or it cannot be read now (logged), so
        that a job's record is still answered."""
        settings = self.services.settings
        try:
            return StatusStore(self.services.aws.dynamodb, settings.control_table).read()
        except (BotoCoreError, ClientError) as exc:
            log.warning("cannot read the lifecycle status from %s: %s", settings.control_table, exc)
            return None

    def costs(self, period: Period, now: datetime) -> dict[str, Any]:
        """The GPU cost document of `period` (lifecycle.costs.period_costs)."""
        services = self.services
        run_log = run_log_for(services.aws.dynamodb, services.settings.control_table)
        return period_costs(run_log, services.jobs, period, now=now,
                            monthly_budget_usd=services.settings.monthly_budget_usd)


def current() -> ApiContext:
    """The ApiContext of the app handling the current request."""
    return current_app.extensions[EXTENSION]
