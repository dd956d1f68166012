"""The result backend on the moto server: each store is one conditional put, a SUCCESS is never overwritten, and
AsyncResult reads what was stored."""

from __future__ import annotations

import pytest
from celery import states

from gpuorch.celery.app import create_celery_app
from gpuorch.celery.results import ResultBackend


@pytest.fixture
def backend(provisioned):
    app = create_celery_app(provisioned.settings)
    calls: list[str] = []
    app.backend.client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    yield app, calls
    app.close()


def test_each_store_is_one_put_and_asyncresult_reads_it(backend):
    app, calls = backend
    assert isinstance(app.backend, ResultBackend)
    app.backend.store_result("t1", {"job_id": "t1", "progress": 40}, "PROGRESS")
    app.backend.store_result("t1", {"job_id": "t1", "status": "succeeded"}, states.SUCCESS)
    assert calls == ["PutItem", "PutItem"]  # Celery's own backend reads before each: GetItem, PutItem twice
    result = app.AsyncResult("t1")
    assert result.state == states.SUCCESS and result.result == {"job_id": "t1", "status": "succeeded"}


def test_a_late_store_does_not_overwrite_a_success(backend):
    app, _ = backend
    app.backend.store_result("t2", {"ok": True}, states.SUCCESS)
    app.backend.store_result("t2", {"progress": 90}, "PROGRESS")  # a lost worker's late write
    app.backend.store_result("t2", ValueError("late"), states.FAILURE)
    app.backend._cache.clear()
    result = app.AsyncResult("t2")
    assert result.state == states.SUCCESS and result.result == {"ok": True}


def test_a_failure_after_progress_is_stored(backend):
    app, _ = backend
    app.backend.store_result("t3", {"progress": 10}, "PROGRESS")
    app.backend.store_result("t3", ValueError("broken"), states.FAILURE)
    result = app.AsyncResult("t3")
    assert result.state == states.FAILURE and isinstance(result.result, ValueError)
