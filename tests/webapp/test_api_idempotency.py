"""Idempotency-Key on submissions: a retry, from any API process, gets the first request's job and queues nothing
more, whatever the limits say by then; another request with the key is refused naming the header."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from gpuorch.celery.app import create_celery_app
from gpuorch.errors import ParamsInvalid
from gpuorch.jobs.idempotency import IdempotencyKeyReused
from gpuorch.tasks import camera_angle, use_app
from tests.webapp.conftest import keyed
from tests.webapp.images import data_uri, png_of_exactly
from webapp import create_app


def body(settings, move: str = "close_up") -> dict:
    return {"image": f"s3://{settings.bucket}/inputs/house.png", "move": move}


def test_a_retry_with_the_key_gets_the_first_job_and_queues_nothing_more(client, settings, queues, job_count):
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers=headers)
    again = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers=headers)
    # The generic route is the same submission.
    generic = client.post("/api/v1/workflows/camera-angle/jobs", json=body(settings), headers=headers)

    assert first.status_code == again.status_code == generic.status_code == 202
    job_id = first.json["job_id"]
    assert again.json["job_id"] == generic.json["job_id"] == job_id
    assert again.headers["Location"] == f"/api/v1/jobs/{job_id}"
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert job_count() == 1
    assert [m["headers"]["id"] for m in queues.receive_gpu()] == [job_id]


def test_the_key_with_another_request_is_refused_naming_it(client, settings, job_count):
    headers = {"Idempotency-Key": "order-42"}
    job_id = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers=headers).json["job_id"]

    other = client.post("/api/v1/camera-angle/jobs", json=body(settings, "top_down"), headers=headers)

    assert other.status_code == 422
    assert other.json["error"]["code"] == "idempotency_key_reused"
    [reason] = other.json["error"]["fields"]["Idempotency-Key"]
    assert job_id in reason
    assert job_count() == 1


def test_a_bad_key_is_refused_before_anything_is_recorded(client, settings, job_count):
    answer = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers={"Idempotency-Key": "x" * 256})

    assert answer.status_code == 422
    assert answer.json["error"]["fields"] == {"Idempotency-Key": ["at most 255 characters, not 256"]}
    assert job_count() == 0


def test_a_refused_request_does_not_use_up_its_key(client, settings, job_count):
    headers = {"Idempotency-Key": "order-42"}
    refused = client.post("/api/v1/camera-angle/jobs", json=body(settings, "sideways"), headers=headers)
    corrected = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers=headers)

    assert (refused.status_code, corrected.status_code) == (422, 202)
    assert "Idempotent-Replayed" not in corrected.headers
    assert job_count() == 1


def test_inline_images_are_stored_once(client, settings, stored, job_count):
    headers = {"Idempotency-Key": "upload-1"}
    request = {"image": data_uri(png_of_exactly(2000)), "move": "close_up"}
    first = client.post("/api/v1/camera-angle/jobs", json=request, headers=headers)
    again = client.post("/api/v1/camera-angle/jobs", json=request, headers=headers)

    assert again.json["job_id"] == first.json["job_id"]
    assert list(stored()) == [f"inputs/{first.json['job_id']}/image.png"]
    assert job_count() == 1


@pytest.fixture
def two_apps(settings, provisioned):
    """Two API app instances (two gunicorn workers, or two hosts) over the same tables and queues."""
    celery_apps = [create_celery_app(settings) for _ in range(2)]
    yield [create_app(settings, celery_app=c) for c in celery_apps]
    for c in celery_apps:
        c.close()


def test_identical_requests_racing_on_two_hosts_are_accepted_once(two_apps, settings, api_key, queues, job_count):
    clients = [keyed(app.test_client(), api_key) for app in two_apps]
    start = threading.Barrier(6)
    answers = []

    def post(client) -> None:
        start.wait(timeout=10)
        answers.append(client.post("/api/v1/camera-angle/jobs", json=body(settings),
                                   headers={"Idempotency-Key": "same-click"}))

    threads = [threading.Thread(target=post, args=(clients[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [a.status_code for a in answers] == [202] * 6
    assert len({a.json["job_id"] for a in answers}) == 1
    assert job_count() == 1
    assert len(queues.receive_gpu()) == 1


def test_a_retry_after_the_backlog_filled_still_gets_its_job(settings, provisioned, api_key, job_count):
    limited = dataclasses.replace(settings, max_backlog=1, backlog_check_seconds=0)
    celery_app = create_celery_app(limited)
    try:
        client = keyed(create_app(limited, celery_app=celery_app).test_client(), api_key)
        headers = {"Idempotency-Key": "order-42"}
        first = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers=headers)
        # The queue is at its limit now: a new request is refused, the retry of the accepted one is not.
        fresh = client.post("/api/v1/camera-angle/jobs", json=body(settings, "top_down"))
        retry = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers=headers)
    finally:
        celery_app.close()

    assert (first.status_code, fresh.status_code, retry.status_code) == (202, 503, 202)
    assert retry.json["job_id"] == first.json["job_id"]
    assert job_count() == 1


def test_delay_with_an_idempotency_key_submits_once(settings, provisioned, queues, job_count):
    celery_app = create_celery_app(settings)
    use_app(celery_app)
    try:
        params = body(settings)
        first = camera_angle.delay(**params, idempotency_key="nightly-7")
        again = camera_angle.delay(**params, idempotency_key="nightly-7")
        with pytest.raises(IdempotencyKeyReused):
            camera_angle.delay(**body(settings, "top_down"), idempotency_key="nightly-7")
        with pytest.raises(ParamsInvalid):
            camera_angle.delay(**params, idempotency_key="")
    finally:
        use_app(None)
        celery_app.close()

    assert again.id == first.id
    assert job_count() == 1
    assert [m["headers"]["id"] for m in queues.receive_gpu()] == [first.id]


def test_a_request_racing_one_that_does_not_finish_is_told_to_retry(client, settings, provisioned, job_count):
    from gpuorch.clock import timestamp, utc_now
    from gpuorch.jobs.idempotency import Claim, fingerprint

    # Another API process claimed the key for this very request and has recorded nothing yet.
    request = {"workflow": "camera-angle", "params": body(settings)}
    provisioned.idempotency.claim("alice", "order-42",
                                  Claim("job", "being-submitted", fingerprint("job", request), timestamp(utc_now())))

    answer = client.post("/api/v1/camera-angle/jobs", json=body(settings), headers={"Idempotency-Key": "order-42"})

    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "idempotency_key_in_use"
    assert list(answer.json["error"]["fields"]) == ["Idempotency-Key"]
    assert answer.headers["Retry-After"] == "1"
    assert job_count() == 0
