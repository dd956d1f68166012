"""Logging for gpuorch's processes: one JSON object per line, with the job, task and instance ids that apply."""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection

from celery._state import get_current_task
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "processName", "message")


class ContextFilter(logging.Filter):
    """Adds task_id inside a task (and job_id inside one of `job_tasks`, whose task id is the job id), and the
    instance id."""

    def __init__(self, instance_id: str | None = None, job_tasks: Collection[str] = ()):
        super().__init__()
        self.instance_id = instance_id or None
        self.job_tasks = frozenset(job_tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        task = get_current_task()
        task_id = getattr(task.request, "id", None) if task is not None else None
        if task_id and not hasattr(record, "task_id"):
            record.task_id = task_id
            if task.name in self.job_tasks:
                record.job_id = getattr(record, "job_id", task_id)
        if self.instance_id and not hasattr(record, "instance_id"):
            record.instance_id = self.instance_id
        return True


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    if fmt == "json":
        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "processName": "process"},
            timestamp=False,
        )
    raise ValueError(f"unknown log format {fmt!r}: json or text")


def configure_logging(level: str = "INFO", fmt: str = "json", instance_id: str | None = None,
                      job_tasks: Collection[str] = ()) -> None:
    """Configure the root logger once, at a process's entry point (stderr; JSON by default); lines logged inside
    one of `job_tasks` name the job."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter(instance_id, job_tasks))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botocore logs every retry at DEBUG and credential look-ups at INFO: keep them out of job logs.
    logging.getLogger("botocore").setLevel(logging.WARNING)
