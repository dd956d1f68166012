"""POST /api/v1/batches and its batch: accepted whole (each item a job of its own, queued) or refused whole (every bad
item named, nothing stored, recorded or queued); counts by status; a whole batch cancelled; the limits counting items;
the same through multipart file parts, an Idempotency-Key and gpuorch.tasks.submit_batch."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from gpuorch.celery.app import create_celery_app
from gpuorch.errors import ParamsInvalid
from gpuorch.jobs import states
from gpuorch.jobs.batches import MAX_BATCH_ITEMS
from gpuorch.tasks import submit_batch, use_app
from tests.conftest import make_key
from tests.webapp.conftest import keyed
from tests.webapp.images import data_uri, encode
from webapp import create_app

PNG = encode("PNG")


def uri(settings, name: str = "house.png") -> str:
    return f"s3://{settings.bucket}/inputs/{name}"


def camera(settings, move: str = "close_up", **extra) -> dict:
    return {"workflow": "camera-angle", "image": uri(settings), "move": move, **extra}


def edit(settings, **extra) -> dict:
    return {"workflow": "qwen-image-edit", "prompt": "Paint it blue", "images": [uri(settings)], **extra}


def test_a_batch_is_accepted_whole_each_item_a_job_of_its_own(client, settings, provisioned, queues):
    items = [camera(settings), edit(settings, seed=7), camera(settings, "top_down", priority="low")]

    answer = client.post("/api/v1/batches", json={"items": items})

    assert answer.status_code == 202, answer.json
    batch = answer.json
    assert answer.headers["Location"] == batch["links"]["self"] == f"/api/v1/batches/{batch['batch_id']}"
    assert (batch["total"], batch["counts"]["queued"], batch["finished"]) == (3, 3, False)
    assert [j["workflow"] for j in batch["items"]] == ["camera-angle", "qwen-image-edit", "camera-angle"]
    ids = [j["job_id"] for j in batch["items"]]
    for job_id in ids:
        record = provisioned.jobs.get(job_id)
        assert (record.batch_id, record.owner, record.status) == (batch["batch_id"], "alice", "queued")
    assert provisioned.jobs.get(ids[1]).params["seed"] == 7
    # Each item is queued as its own job; the low-priority one on its own queue.
    assert sorted(m["headers"]["id"] for m in queues.receive_gpu()) == sorted(ids[:2])
    assert [m["headers"]["id"] for m in queues.receive(settings.gpu_low_queue)] == [ids[2]]


def test_a_batch_with_bad_items_is_refused_whole_naming_each(client, settings, queues, job_count, stored):
    items = [
        camera(settings, image=data_uri(PNG)),  # good, and inline: it must not be stored
        camera(settings, "somersault"),
        {"workflow": "no-such-workflow"},
        edit(settings, output={"format": "gif"}),
        "not an object",
    ]

    answer = client.post("/api/v1/batches", json={"items": items})

    assert answer.status_code == 422
    fields = answer.json["error"]["fields"]
    assert set(fields) == {"items.1.move", "items.2.workflow", "items.3.output.format", "items.4._schema"}
    assert fields["items.2.workflow"] == ["one of camera-angle, qwen-image-edit"]
    assert (job_count(), queues.total(), stored()) == (0, 0, {})


@pytest.mark.parametrize(("body", "fields"), [
    ({"items": []}, {"items": ["a non-empty list of job requests, each with its workflow"]}),
    ({"items": "camera-angle"}, {"items": ["a non-empty list of job requests, each with its workflow"]}),
    ({}, {"items": ["Missing data for required field."]}),
    ({"items": [{"workflow": "camera-angle"}], "priority": "low"}, {"priority": ["Unknown field."]}),
])
def test_a_body_that_is_no_batch_is_refused(client, body, fields, job_count):
    answer = client.post("/api/v1/batches", json=body)
    assert (answer.status_code, answer.json["error"]["fields"]) == (422, fields)
    assert job_count() == 0


def test_a_batch_holds_at_most_its_documented_number_of_items(client, settings, job_count):
    answer = client.post("/api/v1/batches", json={"items": [camera(settings)] * (MAX_BATCH_ITEMS + 1)})
    assert answer.status_code == 422
    assert answer.json["error"]["fields"] == {"items": [f"at most {MAX_BATCH_ITEMS} items in a batch, not "
                                                        f"{MAX_BATCH_ITEMS + 1}"]}
    assert job_count() == 0


def test_images_come_as_file_parts_named_after_their_item(client, settings, provisioned, stored):
    params = {"items": [{"workflow": "camera-angle", "move": "close_up"},
                        {"workflow": "qwen-image-edit", "prompt": "Snow"}]}
    body = {"params": json.dumps(params), "items.0.image": (io.BytesIO(PNG), "a.png"),
            "items.1.images": [(io.BytesIO(PNG), "b.png"), (io.BytesIO(encode("JPEG")), "c.jpg")]}

    answer = client.post("/api/v1/batches", data=body, content_type="multipart/form-data")

    assert answer.status_code == 202, answer.json
    first, second = (provisioned.jobs.get(j["job_id"]) for j in answer.json["items"])
    assert first.params["image"] == f"s3://{settings.bucket}/inputs/{first.job_id}/image.png"
    assert second.params["images"] == [f"s3://{settings.bucket}/inputs/{second.job_id}/images.0.png",
                                       f"s3://{settings.bucket}/inputs/{second.job_id}/images.1.jpg"]
    assert len(stored()) == 3


def test_a_file_part_that_fits_no_item_is_refused(client, settings, job_count):
    params = {"items": [{"workflow": "camera-angle", "move": "close_up"}]}
    body = {"params": json.dumps(params), "items.0.mask": (io.BytesIO(PNG), "m.png"),
            "items.5.image": (io.BytesIO(PNG), "a.png")}
    answer = client.post("/api/v1/batches", data=body, content_type="multipart/form-data")
    assert answer.status_code == 422
    assert set(answer.json["error"]["fields"]) == {"items.0.mask", "items.5.image"}
    assert job_count() == 0


def test_counts_follow_the_items_and_a_cancel_ends_the_unfinished_ones(client, settings, provisioned):
    batch = client.post("/api/v1/batches", json={"items": [camera(settings)] * 3}).json
    first, second, third = (j["job_id"] for j in batch["items"])
    provisioned.jobs.transition(first, states.RUNNING)
    provisioned.jobs.transition(first, states.SUCCEEDED)
    provisioned.jobs.transition(second, states.RUNNING)

    shown = client.get(batch["links"]["self"]).json
    assert {k: v for k, v in shown["counts"].items() if v} == {"queued": 1, "running": 1, "succeeded": 1}

    cancelled = client.post(batch["links"]["cancel"])
    assert cancelled.status_code == 200
    assert [j["status"] for j in cancelled.json["items"]] == ["succeeded", "cancelled", "cancelled"]
    assert cancelled.json["finished"] is True
    assert provisioned.jobs.get(third).status == states.CANCELLED


def test_another_owners_batch_reads_as_missing(client, app, settings, provisioned):
    batch = client.post("/api/v1/batches", json={"items": [camera(settings)]}).json
    bob = keyed(app.test_client(), make_key(provisioned, "bob"))
    operator = keyed(app.test_client(), make_key(provisioned, "ops", operator=True))

    assert bob.get(batch["links"]["self"]).status_code == 404
    assert bob.post(batch["links"]["cancel"]).json["error"]["code"] == "batch_not_found"
    assert operator.get(batch["links"]["self"]).json["batch_id"] == batch["batch_id"]
    assert client.get("/api/v1/batches/no-such-batch").status_code == 404


def test_an_idempotency_key_makes_a_retried_batch_the_same(client, settings, job_count, queues):
    headers = {"Idempotency-Key": "nightly-2026-06-01"}
    body = {"items": [camera(settings), edit(settings)]}
    first = client.post("/api/v1/batches", json=body, headers=headers)
    again = client.post("/api/v1/batches", json=body, headers=headers)
    other = client.post("/api/v1/batches", json={"items": [camera(settings)]}, headers=headers)

    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 422)
    assert again.json["batch_id"] == first.json["batch_id"] and again.headers["Idempotent-Replayed"] == "true"
    assert (job_count(), len(queues.receive_gpu())) == (2, 2)


@pytest.fixture
def limited(settings, provisioned, api_key):
    """The API with a rate limit of 6 a minute in bursts of 3, and a backlog of 5."""
    limited = dataclasses.replace(settings, rate_limit_per_minute=6, rate_limit_burst=3, max_backlog=5,
                                  backlog_check_seconds=0)
    celery_app = create_celery_app(limited)
    yield keyed(create_app(limited, celery_app=celery_app).test_client(), api_key)
    celery_app.close()


def test_the_rate_limit_counts_items(limited, settings, job_count):
    too_many = limited.post("/api/v1/batches", json={"items": [camera(settings)] * 4})
    whole_burst = limited.post("/api/v1/batches", json={"items": [camera(settings)] * 3})
    one_more = limited.post("/api/v1/workflows/camera-angle/jobs",
                            json={"image": uri(settings), "move": "close_up"})

    assert too_many.status_code == 422
    assert too_many.json["error"]["fields"]["items"][0].startswith("4 items: more than this API key may submit at once")
    assert whole_burst.status_code == 202
    assert one_more.status_code == 429
    assert job_count() == 3


def test_the_backlog_limit_counts_items(settings, provisioned, api_key, job_count):
    roomy = dataclasses.replace(settings, max_backlog=5, backlog_check_seconds=0)
    celery_app = create_celery_app(roomy)
    try:
        client = keyed(create_app(roomy, celery_app=celery_app).test_client(), api_key)
        four = client.post("/api/v1/batches", json={"items": [camera(settings)] * 4})
        two = client.post("/api/v1/batches", json={"items": [camera(settings)] * 2})
        six = client.post("/api/v1/batches", json={"items": [camera(settings)] * 6})
    finally:
        celery_app.close()

    assert four.status_code == 202
    assert two.status_code == 503 and two.json["error"]["code"] == "backlog_full"
    assert "2 more would pass their limit of 5" in two.json["error"]["message"]
    assert six.status_code == 422
    assert job_count() == 4


def test_python_callers_submit_batches_too(settings, provisioned, queues):
    celery_app = create_celery_app(settings)
    use_app(celery_app)
    try:
        batch = submit_batch([camera(settings), edit(settings, priority="low")])
        with pytest.raises(ParamsInvalid) as refused:
            submit_batch([camera(settings), camera(settings, "sideways")])
    finally:
        use_app(None)
        celery_app.close()

    assert [r.id for r in batch.results] == list(provisioned.batches.get(batch.id).job_ids)
    assert provisioned.jobs.get(batch.results[1].id).priority == "low"
    assert set(refused.value.errors["items"]) == {1}
