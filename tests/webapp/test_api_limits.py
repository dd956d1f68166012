"""The limits of a submission: the per-key rate limit shared by every API process (429 with Retry-After), the GPU
backlog (503 with the numbers), and an inline image over the byte limit (413 naming its field); each refusal
stores, records and queues nothing."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.celery.app import create_celery_app
from tests.conftest import make_key
from tests.webapp.conftest import keyed
from tests.webapp.images import data_uri, encode, png_of_exactly
from tests.webapp.test_api_uploads import form, post_form
from webapp import create_app

START = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


class Clock:
    """The wall clock every app instance of a test reads (the rate limit's time)."""

    def __init__(self):
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def limited_settings(settings):
    return dataclasses.replace(settings, rate_limit_per_minute=6, rate_limit_burst=3)


@pytest.fixture
def apps(limited_settings, provisioned):
    """Two API app instances (as two gunicorn workers or hosts would be) over the same tables, one clock."""
    clock = Clock()
    celery_apps = [create_celery_app(limited_settings) for _ in range(2)]
    yield clock, [create_app(limited_settings, celery_app=c, clock=clock) for c in celery_apps]
    for c in celery_apps:
        c.close()


def body(settings) -> dict:
    return {"image": f"s3://{settings.bucket}/inputs/house.png", "move": "close_up"}


def test_the_rate_limit_holds_across_app_instances_and_refuses_with_retry_after(apps, limited_settings, api_key,
                                                                               queues, job_count):
    clock, (first, second) = apps
    clients = [keyed(first.test_client(), api_key), keyed(second.test_client(), api_key)]
    # A burst of 3, alternating between the two instances: the third spends the last of it.
    statuses = [clients[i % 2].post("/api/v1/camera-angle/jobs", json=body(limited_settings)).status_code
                for i in range(3)]
    assert statuses == [202, 202, 202]
    queued = (queues.count(limited_settings.gpu_queue), job_count())

    for client in clients:
        refused = client.post("/api/v1/camera-angle/jobs", json=body(limited_settings))
        assert refused.status_code == 429
        assert refused.json["error"]["code"] == "rate_limited"
        # 6 a minute: the next one is allowed 10 s after the burst was spent.
        assert refused.headers["Retry-After"] == "10"
        assert "6 jobs a minute" in refused.json["error"]["message"]
    assert (queues.count(limited_settings.gpu_queue), job_count()) == queued == (3, 3)

    clock.advance(9)
    assert clients[1].post("/api/v1/camera-angle/jobs", json=body(limited_settings)).headers["Retry-After"] == "1"
    clock.advance(1)
    assert clients[1].post("/api/v1/camera-angle/jobs", json=body(limited_settings)).status_code == 202
    assert clients[0].post("/api/v1/camera-angle/jobs", json=body(limited_settings)).status_code == 429


def test_each_key_has_its_own_allowance_and_may_have_its_own_limit(apps, limited_settings, provisioned, api_key):
    _clock, (app, _other) = apps
    alice = keyed(app.test_client(), api_key)
    generous = keyed(app.test_client(), make_key(provisioned, "bob", rate_per_minute=600, burst=5))
    unlimited = keyed(app.test_client(), make_key(provisioned, "carol", rate_per_minute=0))

    assert [alice.post("/api/v1/camera-angle/jobs", json=body(limited_settings)).status_code
            for _ in range(4)] == [202, 202, 202, 429]
    answers = [generous.post("/api/v1/camera-angle/jobs", json=body(limited_settings)) for _ in range(6)]
    assert [a.status_code for a in answers] == [202] * 5 + [429]
    assert answers[-1].headers["Retry-After"] == "1"  # 600 a minute: one every 0.1 s, rounded up
    assert all(unlimited.post("/api/v1/camera-angle/jobs", json=body(limited_settings)).status_code == 202
               for _ in range(8))


def test_reading_jobs_is_not_rate_limited(apps, limited_settings, api_key):
    _clock, (app, _other) = apps
    client = keyed(app.test_client(), api_key)
    assert all(client.get("/api/v1/jobs").status_code == 200 for _ in range(8))


@pytest.fixture
def backlog_app(settings, provisioned):
    small = dataclasses.replace(settings, max_backlog=2, backlog_check_seconds=0)
    celery_app = create_celery_app(small)
    yield small, create_app(small, celery_app=celery_app)
    celery_app.close()


def test_past_the_backlog_a_submission_is_503_naming_the_numbers_and_changes_nothing(
    backlog_app, api_key, queues, job_count, stored
):
    small, app = backlog_app
    client = keyed(app.test_client(), api_key)
    assert [client.post("/api/v1/camera-angle/jobs", json=body(small)).status_code for _ in range(2)] == [202, 202]

    refused = client.post("/api/v1/camera-angle/jobs", json={"image": data_uri(encode("PNG")), "move": "close_up"})

    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "backlog_full"
    assert "2 jobs" in refused.json["error"]["message"] and "limit of 2" in refused.json["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert (queues.count(small.gpu_queue), job_count(), stored()) == (2, 2, {})


def test_a_backlog_refusal_does_not_spend_the_rate_allowance(settings, provisioned, api_key, queues):
    full = dataclasses.replace(settings, max_backlog=1, backlog_check_seconds=0, rate_limit_per_minute=6,
                               rate_limit_burst=2)
    celery_app = create_celery_app(full)
    client = keyed(create_app(full, celery_app=celery_app, clock=Clock()).test_client(), api_key)
    assert client.post("/api/v1/camera-angle/jobs", json=body(full)).status_code == 202
    assert all(client.post("/api/v1/camera-angle/jobs", json=body(full)).status_code == 503 for _ in range(3))
    celery_app.close()


@pytest.fixture
def small_images(settings, provisioned):
    small = dataclasses.replace(settings, max_input_bytes=8192)
    celery_app = create_celery_app(small)
    yield create_app(small, celery_app=celery_app)
    celery_app.close()


def test_an_inline_image_over_the_byte_limit_is_413_naming_its_field_and_leaves_nothing(
    small_images, api_key, queues, job_count, stored
):
    client = keyed(small_images.test_client(), api_key)
    big = png_of_exactly(8193)

    as_data_uri = client.post("/api/v1/camera-angle/jobs", json={"image": data_uri(big), "move": "close_up"})
    as_part = post_form(client, "qwen-image-edit", form({"prompt": "x"}, images=[encode("PNG"), big]))

    for answer, field in ((as_data_uri, "image"), (as_part, "images.1")):
        assert answer.status_code == 413
        assert answer.json["error"]["code"] == "image_too_large"
        assert list(answer.json["error"]["fields"]) == [field]
        assert "8193 bytes, over the limit of 8192" in answer.json["error"]["fields"][field][0]
        assert field in answer.json["error"]["message"]
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)


def test_a_413_image_names_the_other_bad_fields_too(small_images, api_key, job_count):
    client = keyed(small_images.test_client(), api_key)
    answer = client.post("/api/v1/camera-angle/jobs", json={"image": data_uri(png_of_exactly(9000)), "move": "spin"})

    assert answer.status_code == 413
    assert set(answer.json["error"]["fields"]) == {"image", "move"}
    assert job_count() == 0
