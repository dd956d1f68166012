"""Logs are one JSON object per line, carrying the job, task and instance ids where they apply."""

import io
import json
import logging

import pytest
from celery import Celery

from gpuorch.logs import ContextFilter, configure_logging, formatter


def capture(record_logger, fmt="json", instance_id=None, job_tasks=()):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter(instance_id, job_tasks))
    record_logger.addHandler(handler)
    return stream, handler


def test_a_line_is_one_json_object_with_the_instance():
    log = logging.getLogger("gpuorch.test.plain")
    stream, handler = capture(log, instance_id="i-0abc")
    try:
        log.warning("hello %s", "world", extra={"job_id": "j1"})
    finally:
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "hello world" and line["level"] == "WARNING" and line["logger"] == "gpuorch.test.plain"
    assert line["job_id"] == "j1" and line["instance_id"] == "i-0abc" and "time" in line


def test_inside_a_job_task_the_task_id_is_the_job_id():
    app = Celery("test", set_as_current=False)
    log = logging.getLogger("gpuorch.test.task")
    seen = {}

    @app.task(name="example.job_task", bind=True)
    def example(self):
        stream, handler = capture(log, job_tasks={"example.job_task"})
        try:
            log.info("inside")
        finally:
            log.removeHandler(handler)
        seen.update(json.loads(stream.getvalue()))

    log.setLevel(logging.INFO)
    example.apply(task_id="t-123")  # runs here, in this process: the task context is what is under test
    assert seen["task_id"] == "t-123" and seen["job_id"] == "t-123"


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="json or text"):
        formatter("xml")


def test_configure_replaces_the_root_handlers():
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging("INFO", "text")
        configure_logging("INFO", "json")
        assert len(root.handlers) == 1
    finally:
        root.handlers[:], _ = before[0], root.setLevel(before[1])
