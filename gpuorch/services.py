"""The long-lived objects one process needs (AWS clients, job store, idempotency claims, workflows), built from
Settings."""

from __future__ import annotations

import functools

from gpuorch.aws.clients import AwsClients
from gpuorch.jobs.batch_store import BatchStore
from gpuorch.jobs.idempotency import IdempotencyStore
from gpuorch.jobs.store import JobStore
from gpuorch.settings import Settings
from gpuorch.workflows import WorkflowSet, load_workflows


class Services:
    """Built once per process from its Settings; each part is created on first use."""

    def __init__(self, settings: Settings, aws: AwsClients | None = None):
        self.settings = settings
        self.aws = aws or AwsClients(settings)

    @functools.cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.aws.dynamodb, self.settings.job_table, ttl_seconds=self.settings.job_ttl_seconds)

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
