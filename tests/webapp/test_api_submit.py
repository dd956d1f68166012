"""POST /api/v1/{workflow}/jobs: an accepted job is recorded and queued once; a refused one leaves nothing."""

from __future__ import annotations

import dataclasses

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gpuorch.celery.app import create_celery_app
from tests.webapp.conftest import keyed
from webapp import create_app
from webapp.request_body import MAX_JSON_DEPTH


def image(settings, name: str = "cat.png") -> str:
    return f"s3://{settings.bucket}/inputs/{name}"


def test_camera_angle_job_is_recorded_and_queued_once(client, settings, provisioned, queues):
    body = {"image": image(settings), "move": "rotate_left", "degrees": 45}

    answer = client.post("/api/v1/camera-angle/jobs", json=body)

    assert answer.status_code == 202
    job_id = answer.json["job_id"]
    assert answer.headers["Location"] == f"/api/v1/jobs/{job_id}"
    answered = answer.json
    assert answered.pop("estimate")["usd_warm"] > 0  # the price quote: tests/webapp/test_api_whereabouts.py
    assert answered == {
        "job_id": job_id,
        "status": "queued",
        "workflow": "camera-angle",
        "links": {"self": f"/api/v1/jobs/{job_id}"},
    }
    record = provisioned.jobs.get(job_id)
    assert (record.status, record.workflow, record.source) == ("queued", "camera-angle", "api")
    assert record.params == body

    # The submission asks the control worker for a GPU check at once (a stopped GPU starts in seconds).
    [check] = queues.receive(settings.control_queue)
    assert check["headers"]["task"] == "gpuorch.lifecycle.check"
    [message] = queues.receive_gpu()
    assert message["headers"]["id"] == job_id
    assert message["headers"]["task"] == "gpuorch.tasks.camera_angle"
    assert message["args"] == []
    assert message["kwargs"] == body
    # Invariant 7: ids and small parameters only; the image travels by URI.
    assert message["size"] < 4096


def test_image_edit_job_carries_normalized_params(client, settings, provisioned, queues):
    images = [image(settings, "a.png"), "https://example.com/b.png"]

    answer = client.post("/api/v1/qwen-image-edit/jobs", json={"prompt": "  make it snow  ", "images": images})

    assert answer.status_code == 202
    job_id = answer.json["job_id"]
    expected = {"prompt": "make it snow", "negative_prompt": "", "images": images}
    assert provisioned.jobs.get(job_id).params == expected
    [message] = queues.receive_gpu()
    assert (message["headers"]["id"], message["headers"]["task"]) == (job_id, "gpuorch.tasks.qwen_image_edit")
    assert message["kwargs"] == expected


def test_submitted_job_reads_back(client, settings, provisioned):
    job_id = client.post("/api/v1/camera-angle/jobs", json={"image": image(settings), "move": "close_up"}).json["job_id"]

    job = client.get(f"/api/v1/jobs/{job_id}")

    assert job.status_code == 200
    assert job.json["job_id"] == job_id
    assert (job.json["workflow"], job.json["status"], job.json["progress"], job.json["attempts"]) == (
        "camera-angle", "queued", 0, 0,
    )
    assert job.json["params"] == {"image": image(settings), "move": "close_up"}
    assert job.json["created_at"] == job.json["updated_at"]
    assert (job.json["started_at"], job.json["finished_at"], job.json["error"], job.json["node"]) == (None,) * 4
    assert job.json["outputs"] == []
    assert job.json["links"] == {"self": f"/api/v1/jobs/{job_id}"}


def with_images(body: dict, settings) -> dict:
    """The body with each "IMAGE" placeholder replaced by a URI in the test's own (allowed) bucket."""

    def fill(value):
        if isinstance(value, list):
            return [fill(item) for item in value]
        return image(settings) if value == "IMAGE" else value

    return {key: fill(value) for key, value in body.items()}


INVALID = [
    pytest.param("camera-angle", {"move": "top_down"}, "image", id="missing field"),
    pytest.param("camera-angle", {"image": "IMAGE", "move": "top_down", "seed": "12"}, "seed", id="wrong type"),
    pytest.param("camera-angle", {"image": "IMAGE", "move": "top_down", "colour": "red"}, "colour", id="unknown field"),
    pytest.param("camera-angle", {"image": "IMAGE", "move": "somersault"}, "move", id="bad camera move"),
    pytest.param("camera-angle", {"image": "IMAGE", "move": "rotate_left"}, "degrees", id="rotation without degrees"),
    pytest.param("camera-angle", {"image": "IMAGE", "move": "rotate_left", "degrees": 30}, "degrees", id="bad degrees"),
    pytest.param("camera-angle", {"image": "ftp://host/a.png", "move": "top_down"}, "image", id="bad image uri"),
    pytest.param("qwen-image-edit", {"prompt": "x", "images": ["IMAGE"] * 4}, "images", id="too many images"),
    pytest.param("qwen-image-edit", {"prompt": "x", "images": []}, "images", id="no images"),
    pytest.param("qwen-image-edit", {"prompt": "", "images": ["IMAGE"]}, "prompt", id="empty prompt"),
    pytest.param(
        "qwen-image-edit", {"prompt": "x", "images": ["s3://not-our-bucket/a.png"]}, "images", id="bucket not allowed"
    ),
]


@pytest.mark.parametrize(("workflow", "body", "field"), INVALID)
def test_invalid_params_are_422_naming_the_field_and_leave_nothing(
    client, settings, queues, job_count, workflow, body, field
):
    answer = client.post(f"/api/v1/{workflow}/jobs", json=with_images(body, settings))

    assert answer.status_code == 422
    error = answer.json["error"]
    assert error["code"] == "invalid_params"
    assert field in error["fields"]
    assert all(isinstance(reason, str) and reason for reason in error["fields"][field])
    assert field in error["message"]
    assert set(answer.json) == {"error"}
    assert (queues.total(), job_count()) == (0, 0)


def test_every_problem_is_named_at_once(client):
    answer = client.post("/api/v1/qwen-image-edit/jobs", json={"images": "s3://x", "extra": 1})

    assert answer.status_code == 422
    assert set(answer.json["error"]["fields"]) == {"prompt", "images", "extra"}


@pytest.mark.parametrize(
    ("data", "content_type", "code"),
    [
        pytest.param("{not json", "application/json", "invalid_json", id="malformed JSON"),
        pytest.param("", "application/json", "invalid_json", id="empty body"),
        pytest.param("image=s3://b/k", "application/x-www-form-urlencoded", "invalid_json", id="form body"),
        pytest.param('["s3://b/k"]', "application/json", "invalid_body", id="array body"),
        pytest.param('"text"', "application/json", "invalid_body", id="string body"),
        pytest.param("null", "application/json", "invalid_body", id="null body"),
        pytest.param('{"seed": NaN}', "application/json", "invalid_json", id="NaN is not JSON"),
        pytest.param(b'{"prompt": "\xff"}', "application/json", "invalid_json", id="malformed UTF-8"),
        # Escaped lone surrogates parse, but no store can encode them: the record's write failed, answered 503.
        pytest.param('{"prompt": "a\\ud800"}', "application/json", "invalid_json", id="lone surrogate"),
        pytest.param('{"x\\udfff": 1}', "application/json", "invalid_json", id="lone surrogate in a name"),
        # json.loads(bytes) read these bytes as a lone surrogate, which the job table refused: a 503.
        pytest.param(b'{"prompt": "a\xed\xa0\x80"}', "application/json", "invalid_json", id="UTF-8-encoded surrogate"),
        # 2 kB: json's recursion ran out (a RecursionError, answered 500).
        pytest.param('{"prompt": ' + "[" * 1000 + "]" * 1000 + "}", "application/json", "invalid_json",
                     id="nested a thousand levels"),
        pytest.param('{"prompt": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}", "application/json", "invalid_json",
                     id="objects nested a thousand levels"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(client, queues, job_count, data, content_type, code):
    answer = client.post("/api/v1/camera-angle/jobs", data=data, content_type=content_type)

    assert answer.status_code == 400
    assert answer.json["error"]["code"] == code
    assert answer.json["error"]["message"]
    assert "fields" not in answer.json["error"]
    assert (queues.total(), job_count()) == (0, 0)


def nested(levels: int) -> str:
    """A camera-angle body whose arrays reach ``levels`` levels, the body itself being the first."""
    return '{"image": "s3://b/k", "move": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


def test_a_body_nested_past_the_limit_is_400_naming_it_and_leaves_nothing(client, queues, job_count):
    answer = client.post("/api/v1/camera-angle/jobs", data=nested(MAX_JSON_DEPTH + 1), content_type="application/json")

    assert answer.status_code == 400
    assert answer.json == {"error": {
        "code": "invalid_json",
        "message": f"The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels.",
    }}
    assert (queues.total(), job_count()) == (0, 0)


def test_a_body_nested_to_the_limit_is_parsed_and_judged_by_the_schema(client, queues, job_count):
    answer = client.post("/api/v1/camera-angle/jobs", data=nested(MAX_JSON_DEPTH), content_type="application/json")

    assert answer.status_code == 422
    assert "move" in answer.json["error"]["fields"]
    assert (queues.total(), job_count()) == (0, 0)


def test_raw_surrogate_bytes_are_refused_as_not_utf8(client):
    answer = client.post("/api/v1/camera-angle/jobs", data=b'{"move": "\xed\xa0\x80"}', content_type="application/json")

    assert answer.status_code == 400
    assert answer.json["error"]["message"] == "The request body is not UTF-8: invalid continuation byte at byte 10."


def test_a_byte_order_mark_before_the_body_is_skipped(client, settings):
    body = f'{{"image": "{image(settings)}", "move": "close_up"}}'.encode()

    answer = client.post("/api/v1/camera-angle/jobs", data=b"\xef\xbb\xbf" + body, content_type="application/json")

    assert answer.status_code == 202, answer.json


def test_a_paired_surrogate_escape_is_text(client, settings, provisioned):
    answer = client.post("/api/v1/qwen-image-edit/jobs", data='{"prompt": "snow \\ud83c\\udf28", "images": '
                         f'["s3://{settings.bucket}/inputs/a.png"]}}', content_type="application/json")

    assert answer.status_code == 202, answer.json
    assert client.get(answer.headers["Location"]).json["params"]["prompt"] == "snow \U0001f328"


def test_an_oversized_body_is_413_in_the_error_shape(api_key, settings, queues, job_count):
    limited = dataclasses.replace(settings, max_request_bytes=256 * 1024)
    celery_app = create_celery_app(limited)
    client = keyed(create_app(limited, celery_app=celery_app).test_client(), api_key)

    answer = client.post(
        "/api/v1/qwen-image-edit/jobs", json={"prompt": "x" * 300_000, "images": [image(settings)]}
    )

    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "request_entity_too_large"
    assert (queues.total(), job_count()) == (0, 0)
    celery_app.close()


def post_chunked(client, path: str, body: bytes):
    """POST ``body`` as gunicorn hands a chunked one to the app: no Content-Length, and a stream the server ends
    itself (wsgi.input_terminated)."""
    environ = EnvironBuilder(path=path, method="POST", data=body, content_type="application/json").get_environ()
    del environ["CONTENT_LENGTH"]
    environ.update({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True})
    return client.open(Request(environ))


def test_a_chunked_body_over_the_limit_is_413_not_cut(api_key, settings, queues, job_count):
    limit = 256 * 1024
    limited = dataclasses.replace(settings, max_request_bytes=limit)
    celery_app = create_celery_app(limited)
    client = keyed(create_app(limited, celery_app=celery_app).test_client(), api_key)
    body = f'{{"image": "{image(settings)}", "move": "close_up"}}'.encode()

    over = post_chunked(client, "/api/v1/camera-angle/jobs", body.ljust(limit + 1))
    at_the_limit = post_chunked(client, "/api/v1/camera-angle/jobs", body.ljust(limit))

    assert over.status_code == 413
    assert over.json["error"]["code"] == "request_entity_too_large"
    assert at_the_limit.status_code == 202, at_the_limit.json
    assert (queues.count(settings.gpu_queue), job_count()) == (1, 1)
    celery_app.close()


def test_a_store_that_refuses_the_record_is_503_and_nothing_is_queued(api_key, provisioned, settings, queues):
    # A job table that does not exist: DynamoDB answers, but refuses the write.
    broken = dataclasses.replace(settings, job_table=f"{settings.job_table}_missing")
    celery_app = create_celery_app(broken)
    client = keyed(create_app(broken, celery_app=celery_app).test_client(), api_key)

    answer = client.post("/api/v1/camera-angle/jobs", json={"image": image(settings), "move": "close_up"})

    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "unavailable"
    assert queues.total() == 0
    celery_app.close()
