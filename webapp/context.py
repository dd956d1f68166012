"""What the routes reach through the Flask app: the Celery app that publishes, its services, the health checker,
and the signer of output download links."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from gpuorch.celery_app import GpuorchCelery
from gpuorch.errors import UnknownWorkflow
from gpuorch.jobs.store import Job
from gpuorch.services import Services
from gpuorch.tasks import task_for
from gpuorch.workflows import UnknownWorkflowError, Workflow
from webapp.health import HealthChecker
from webapp.outputs import OutputLinks

EXTENSION = "gpuorch"


@dataclass(frozen=True)
class ApiContext:
    celery: GpuorchCelery
    health: HealthChecker
    outputs: OutputLinks

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


def current() -> ApiContext:
    """The ApiContext of the app handling the current request."""
    return current_app.extensions[EXTENSION]
