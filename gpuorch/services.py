"""The long-lived objects one process needs (AWS clients, job store, idempotency claims, workflows), built from
Settings."""

from __future__ import annotations

import functools

from gpuorch.aws.clients import AwsClients
from gpuorch.jobs.batch_store import BatchStore
from gpuorch.jobs.idempotency import IdempotencyStore
from gpuorch.jobs.store import JobStore, Listener
from gpuorch.settings import Settings
from gpuorch.workflows import WorkflowSet, load_workflows


class Services:
    """Built once per process from its Settings; each part is created on first use."""

    def __init__(self, settings: Settings, aws: AwsClients | None = None, *, job_listener: Listener | None = None):
        self.settings = settings
        self.aws = aws or AwsClients(settings)
        self.job_listener = job_listener

    @functools.cached_property
    def jobs(self) -> JobStore:
        """The job table; its status and progress writes are told to `job_listener` (the Celery app's webhook
        announcer), if any."""
        return JobStore(self.aws.dynamodb, self.settings.job_table, ttl_seconds=self.settings.job_ttl_seconds,
                        listener=self.job_listener)

    @functools.cached_property
    def idempotency(self) -> IdempotencyStore:
        """Idempotency keys' claims, kept as long as the job records (and at least a day)."""
        return IdempotencyStore(self.aws.dynamodb, self.settings.control_table, keep_s=self.settings.job_ttl_seconds)

    @functools.cached_property
    def batches(self) -> BatchStore:
        """Batch records, kept as long as their jobs."""
        return BatchStore(self.aws.dynamodb, self.settings.control_table, ttl_s=self.settings.job_ttl_seconds)

    @functools.cached_property
    def workflows(self) -> WorkflowSet:
        return load_workflows(self.settings.workflows_dir)
