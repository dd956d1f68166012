"""A job's options beside its parameters: recorded as asked, refused naming each bad one with the other fields'
problems, the same through REST (JSON and multipart), the generic route and .delay()."""

from __future__ import annotations

import pytest

from gpuorch.celery.app import create_celery_app
from gpuorch.errors import ParamsInvalid
from gpuorch.tasks import camera_angle, use_app
from tests.webapp.images import encode
from tests.webapp.test_api_uploads import form, post_form


def body(settings, **options) -> dict:
    return {"image": f"s3://{settings.bucket}/inputs/house.png", "move": "close_up", **options}


def test_output_options_are_recorded_and_answered(client, settings, provisioned, queues):
    answer = client.post("/api/v1/camera-angle/jobs",
                         json=body(settings, output={"format": "webp", "quality": 70, "inline": True}))

    assert answer.status_code == 202, answer.json
    job_id = answer.json["job_id"]
    assert provisioned.jobs.get(job_id).options.output.format == "webp"
    shown = client.get(f"/api/v1/jobs/{job_id}").json
    assert shown["output"] == {"format": "webp", "quality": 70, "inline": True}
    # The options are the job record's, not the workflow's: the task message carries the parameters only.
    assert shown["params"] == body(settings)
    [message] = queues.receive_gpu()
    assert message["kwargs"] == body(settings)


def test_by_default_outputs_are_png_not_inline(client, settings):
    job_id = client.post("/api/v1/workflows/camera-angle/jobs", json=body(settings)).json["job_id"]
    assert client.get(f"/api/v1/jobs/{job_id}").json["output"] == {"format": "png", "quality": None, "inline": False}


@pytest.mark.parametrize(("output", "fields"), [
    ({"format": "gif"}, {"output.format": ["Must be one of: png, jpeg, webp."]}),
    ({"format": "png", "quality": 80}, {"output.quality": ["only jpeg and webp take a quality"]}),
    ({"format": "jpeg", "quality": 0}, {"output.quality": ["Must be greater than or equal to 1 and less than or equal "
                                                           "to 100."]}),
    ({"inline": "yes please"}, {"output.inline": ["Not a valid boolean."]}),
    ({"size": 3}, {"output.size": ["Unknown field."]}),
    ("webp", {"output": ["Invalid input type."]}),
])
def test_bad_output_options_are_named_beside_the_other_problems(client, settings, job_count, output, fields):
    answer = client.post("/api/v1/camera-angle/jobs", json={**body(settings, output=output), "move": "spin"})

    assert answer.status_code == 422
    assert answer.json["error"]["fields"] == {"move": ["Must be one of: rotate_left, rotate_right, top_down, "
                                                       "close_up, wide_angle, move_forward, move_left, move_right, "
                                                       "move_down."], **fields}
    assert job_count() == 0


def test_a_multipart_submission_takes_its_options_in_params(client, provisioned):
    answer = post_form(client, "camera-angle", form({"move": "top_down", "output": {"format": "jpeg"}},
                                                    image=[encode("PNG")]))

    assert answer.status_code == 202, answer.json
    assert provisioned.jobs.get(answer.json["job_id"]).output == {"format": "jpeg", "quality": 90, "inline": False}


def test_the_request_schema_documents_the_options(client):
    schema = client.get("/api/v1/workflows/camera-angle").json["request_schema"]
    assert schema["properties"]["output"]["properties"]["format"]["enum"] == ["png", "jpeg", "webp"]
    document = client.get("/openapi.json").json
    assert "output" in document["components"]["schemas"]["CameraAngleRequest"]["properties"]
    assert "output" in document["components"]["schemas"]["CameraAngleForm"]["properties"]["params"]["properties"]


def test_delay_takes_the_same_options(settings, provisioned, job_count):
    celery_app = create_celery_app(settings)
    use_app(celery_app)
    try:
        result = camera_angle.delay(**body(settings, output={"format": "webp", "inline": True}))
        with pytest.raises(ParamsInvalid) as refused:
            camera_angle.delay(**body(settings, output={"format": "tiff"}))
    finally:
        use_app(None)
        celery_app.close()

    assert provisioned.jobs.get(result.id).output == {"format": "webp", "quality": 90, "inline": True}
    assert list(refused.value.errors) == ["output.format"]
    assert job_count() == 1


@pytest.mark.parametrize(("options", "fields"), [
    ({"priority": "urgent"}, {"priority": ["Must be one of: normal, low."]}),
    ({"deadline": "2020-01-01T00:00:00Z"}, "deadline"),
    ({"deadline": "2030-01-01T00:00:00"}, {"deadline": ["Not a valid aware datetime."]}),
    ({"deadline": "2999-01-01T00:00:00Z"}, "deadline"),
    ({"ttl_seconds": 0}, {"ttl_seconds": ["Must be greater than or equal to 1."]}),
    ({"ttl_seconds": 60, "deadline": "2999-01-01T00:00:00Z"}, {"ttl_seconds": ["give deadline or ttl_seconds, "
                                                                              "not both"]}),
    ({"colour": "red"}, {"colour": ["Unknown field."]}),
])
def test_bad_priorities_and_deadlines_are_named(client, settings, job_count, options, fields):
    answer = client.post("/api/v1/camera-angle/jobs", json=body(settings, **options))

    assert answer.status_code == 422
    named = answer.json["error"]["fields"]
    if isinstance(fields, str):
        assert list(named) == [fields]
    else:
        assert named == fields
    assert job_count() == 0


def test_a_deadline_is_recorded_and_a_queued_job_past_it_expires(client, settings, provisioned, queues):
    from datetime import datetime, timedelta, timezone

    from gpuorch.jobs.expiry import expire_overdue

    job_id = client.post("/api/v1/camera-angle/jobs", json=body(settings, ttl_seconds=60)).json["job_id"]
    shown = client.get(f"/api/v1/jobs/{job_id}").json
    deadline = datetime.fromisoformat(shown["deadline"].replace("Z", "+00:00"))
    assert timedelta(seconds=55) < deadline - datetime.now(timezone.utc) <= timedelta(seconds=60)

    assert expire_overdue(provisioned.jobs, deadline - timedelta(seconds=1)) == []
    assert expire_overdue(provisioned.jobs, deadline + timedelta(seconds=1)) == [job_id]
    expired = client.get(f"/api/v1/jobs/{job_id}").json
    assert (expired["status"], expired["waiting_reason"]) == ("expired", None)
    assert expired["finished_at"] and expired["error"].startswith("not started by its deadline")
    assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
    assert [j["job_id"] for j in client.get("/api/v1/jobs?status=expired").json["jobs"]] == [job_id]


def test_a_low_priority_job_goes_to_its_own_queue_and_asks_for_no_gpu(client, settings, queues):
    job_id = client.post("/api/v1/camera-angle/jobs", json=body(settings, priority="low")).json["job_id"]

    assert queues.receive_gpu() == []
    assert queues.receive(settings.control_queue) == []  # no lifecycle check: it starts no GPU
    [message] = queues.receive(settings.gpu_low_queue)
    assert (message["headers"]["id"], message["kwargs"]) == (job_id, body(settings))
    shown = client.get(f"/api/v1/jobs/{job_id}").json
    assert shown["priority"] == "low"
    assert shown["waiting_reason"].startswith("priority low: it starts no GPU by itself, and none is up now")


def test_run_workflow_takes_the_options_beside_its_params(settings, provisioned):
    from gpuorch.tasks import run_workflow

    celery_app = create_celery_app(settings)
    use_app(celery_app)
    try:
        result = run_workflow.delay(workflow="camera-angle", params=body(settings), priority="low", ttl_seconds=600)
        with pytest.raises(TypeError):
            run_workflow.delay(workflow="camera-angle", params=body(settings), colour="red")
    finally:
        use_app(None)
        celery_app.close()

    record = provisioned.jobs.get(result.id)
    assert (record.priority, record.params) == ("low", body(settings))
    assert record.deadline is not None
