"""What the routes reach through the Flask app: the Celery app and its services, the submitter, the health checker,
the signer of output download links, the clock, the GPU lifecycle, the API keys and the limits."""

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
from gpuorch.access.spend import SpendGauge, cap_for
from gpuorch.celery.app import GpuorchCelery
from gpuorch.clock import utc_now
from gpuorch.jobs.batch_store import Batch
from gpuorch.jobs.batches import BatchSubmitter
from gpuorch.jobs.store import Job
from gpuorch.jobs.submission import JobSubmitter
from gpuorch.jobs.watch import JobWatch
from gpuorch.services import Services
from gpuorch.workflows import Workflow
from lifecycle.facade import GpuLifecycle, LifecycleStatus, Period, Whereabouts
from webapp.health import HealthChecker
from gpuorch.jobs.outputs import OutputLinks

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
    spend: SpendGauge
    lifecycle: GpuLifecycle
    watch: JobWatch
    clock: Callable[[], datetime] = utc_now

    @property
    def services(self) -> Services:
        return self.celery.services

    @property
    def submitter(self) -> JobSubmitter:
        return self.celery.submitter

    @property
    def batches(self) -> BatchSubmitter:
        return self.celery.batches

    def workflow(self, name: str) -> Workflow:
        """The workflow of that name; UnknownWorkflow (answered 404) when there is none."""
        return self.submitter.workflow(name)

    def admit(self, key: ApiKey, jobs: int = 1) -> None:
        """Let a submission of `jobs` jobs (a batch's items) of `key` through the limits: BacklogFull when the GPU
        queues cannot take that many and SpendCapReached when its owner spent its monthly cap (nothing spent),
        RateLimited when the key's allowance is spent; TooManyAtOnce when a batch could never pass them."""
        settings = self.services.settings
        self.backlog.check(settings.max_backlog, jobs)
        self.spend.check(key.owner, cap_for(key.monthly_cap_usd, settings.owner_monthly_cap_usd))
        per_minute = key.rate_per_minute if key.rate_per_minute is not None else settings.rate_limit_per_minute
        self.limiter.spend(key.key_id, Limit(per_minute, key.burst or settings.rate_limit_burst), jobs)

    def visible_batch(self, batch_id: str, key: ApiKey) -> Batch | None:
        """The batch if the key may see it (its owner's, or any for an operator key); None otherwise."""
        batch = self.services.batches.get(batch_id)
        if batch is None or (not key.operator and batch.owner != key.owner):
            return None
        return batch

    def visible_job(self, job_id: str, key: ApiKey) -> Job | None:
        """The job if the key may see it (its owner's, or any for an operator key); None otherwise, so another
        owner's job reads exactly like a missing one."""
        job = self.services.jobs.get(job_id)
        if job is None or (not key.operator and job.owner != key.owner):
            return None
        return job

    def lifecycle_status(self) -> LifecycleStatus | None:
        """The last lifecycle check's outcome (as read within the last 2 s); None when there was none or it cannot be
        read now (logged), so that a job's record is still answered."""
        try:
            return self.lifecycle.recent_check()
        except (BotoCoreError, ClientError) as exc:
            log.warning("cannot read the lifecycle status: %s", exc)
            return None

    def whereabouts(self, jobs: list[Job], now: datetime) -> dict[str, Whereabouts]:
        """Where each queued or running job is; {} when the lifecycle cannot be read now (logged), so that the
        records are still answered."""
        try:
            return self.lifecycle.locate(self.services.jobs, jobs, now)
        except (BotoCoreError, ClientError) as exc:
            log.warning("cannot place the jobs: %s", exc)
            return {}

    def submission_estimate(self, workflow: Workflow) -> dict[str, Any] | None:
        """What a job of `workflow` about to be queued should take and cost; None when it cannot be known now."""
        try:
            return self.lifecycle.submission_estimate(self.services.jobs, workflow.name,
                                                      ahead=self.backlog.recent_depth(), now=self.clock())
        except (BotoCoreError, ClientError) as exc:
            log.warning("no estimate for a %s job: %s", workflow.name, exc)
            return None

    def costs(self, period: Period, now: datetime, *, by_owner: bool = False) -> dict[str, Any]:
        """The GPU cost document of `period` (with each owner's part, when asked)."""
        return self.lifecycle.costs(self.services.jobs, period, now, by_owner=by_owner)


def current() -> ApiContext:
    """The ApiContext of the app handling the current request."""
    return current_app.extensions[EXTENSION]
