"""What the routes reach through the Flask app: the Celery app that publishes, its services, the health checker,
the signer of output download links, the clock, and the GPU lifecycle's records."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from flask import current_app

from gpuorch.celery_app import GpuorchCelery
from gpuorch.errors import UnknownWorkflow
from gpuorch.jobs.store import Job, utc_now
from gpuorch.services import Services
from gpuorch.tasks import task_for
from gpuorch.workflows import UnknownWorkflowError, Workflow
from webapp.health import HealthChecker
from lifecycle.check import LifecycleStatus, StatusStore
from lifecycle.costs import Period, period_costs, run_log_for
from webapp.outputs import OutputLinks

log = logging.getLogger(__name__)

EXTENSION = "gpuorch"


@dataclass(frozen=True)
class ApiContext:
    celery: GpuorchCelery
    health: HealthChecker
    outputs: OutputLinks
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

    def submit(self, workflow: str, params: dict[str, Any]) -> Job:
        """Validate, record and publish one job (gpuorch.submission.accept, through the workflow's task)."""
        # task_for names the task; looking it up on this Celery app binds it to this app's broker and services.
        task = self.celery.tasks[task_for(workflow).name]
        return task.submit(workflow, params, source="api")

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
