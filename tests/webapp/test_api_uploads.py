"""Images sent with the request (file parts, data: URIs): stored in S3 before the job is queued, by URI only."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from kombu.exceptions import OperationalError

from gpuorch.jobs.submission import JobSubmitter
from gpuorch.celery.app import create_celery_app
from tests.webapp.images import data_uri, encode, png_of_exactly
from tests.webapp.conftest import keyed
from webapp import create_app
from webapp.request_body import MAX_JSON_DEPTH, request_body_limit

PNG = encode("PNG")


def form(params: dict | None = None, **files: list[bytes]) -> dict:
    """A multipart body for the test client: the params part, and file parts named after their parameter."""
    body: dict = {} if params is None else {"params": json.dumps(params)}
    for name, parts in files.items():
        body[name] = [(io.BytesIO(data), f"{name}-{i}.bin") for i, data in enumerate(parts)]
    return body


def post_form(client, workflow: str, body: dict):
    return client.post(f"/api/v1/{workflow}/jobs", data=body, content_type="multipart/form-data")


def test_a_file_part_is_stored_and_the_job_names_it_by_uri(client, settings, provisioned, queues, stored):
    answer = post_form(client, "camera-angle", form({"move": "close_up"}, image=[PNG]))

    assert answer.status_code == 202
    job_id = answer.json["job_id"]
    uri = f"s3://{settings.bucket}/inputs/{job_id}/image.png"
    assert stored() == {f"inputs/{job_id}/image.png": (PNG, "image/png")}
    assert provisioned.jobs.get(job_id).params == {"image": uri, "move": "close_up"}
    [message] = queues.receive_gpu()
    assert message["kwargs"] == {"image": uri, "move": "close_up"}
    assert message["size"] < 4096  # the image travels by URI, never in the message


def test_file_parts_of_a_list_keep_their_order_and_formats(client, settings, provisioned, queues, stored):
    images = [encode("PNG", colour=(1, 1, 1)), encode("JPEG"), encode("WEBP")]

    answer = post_form(client, "qwen-image-edit", form({"prompt": "snow"}, images=images))

    assert answer.status_code == 202
    job_id = answer.json["job_id"]
    keys = [f"inputs/{job_id}/images.0.png", f"inputs/{job_id}/images.1.jpg", f"inputs/{job_id}/images.2.webp"]
    assert stored() == dict(zip(keys, zip(images, ["image/png", "image/jpeg", "image/webp"])))
    uris = [f"s3://{settings.bucket}/{key}" for key in keys]
    assert provisioned.jobs.get(job_id).params["images"] == uris
    [message] = queues.receive_gpu()
    assert message["kwargs"]["images"] == uris
    assert message["size"] < 4096


def test_the_params_part_may_be_sent_as_a_file(client, settings, stored):
    body = {
        "params": (io.BytesIO(b'{"move": "top_down"}'), "request.json", "application/json"),
        "image": (io.BytesIO(PNG), "a.png"),
    }

    answer = post_form(client, "camera-angle", body)

    assert answer.status_code == 202
    assert list(stored()) == [f"inputs/{answer.json['job_id']}/image.png"]


def test_data_uris_in_json_are_stored_beside_uris_that_stay_as_they_are(client, settings, provisioned, queues, stored):
    jpeg = encode("JPEG")
    kept = f"s3://{settings.bucket}/inputs/house.png"
    body = {"prompt": "snow", "images": [kept, data_uri(jpeg, "image/jpeg")]}

    answer = client.post("/api/v1/qwen-image-edit/jobs", json=body)

    assert answer.status_code == 202
    job_id = answer.json["job_id"]
    assert stored() == {f"inputs/{job_id}/images.1.jpg": (jpeg, "image/jpeg")}
    expected = [kept, f"s3://{settings.bucket}/inputs/{job_id}/images.1.jpg"]
    assert provisioned.jobs.get(job_id).params["images"] == expected
    [message] = queues.receive_gpu()
    assert message["kwargs"]["images"] == expected
    assert "base64" not in json.dumps(message["kwargs"])


def test_the_generic_route_takes_file_parts_too(client, settings, provisioned, stored):
    answer = client.post(
        "/api/v1/workflows/camera-angle/jobs", data=form({"move": "top_down"}, image=[PNG]),
        content_type="multipart/form-data",
    )

    assert answer.status_code == 202
    assert list(stored()) == [f"inputs/{answer.json['job_id']}/image.png"]


BAD_IMAGES = [
    pytest.param("image", b"not an image at all", "not an image in an accepted format", id="not an image"),
    pytest.param("image", encode("GIF"), "not an image in an accepted format", id="gif"),
    pytest.param("image", b"", "empty", id="empty file"),
    pytest.param("image", encode("PNG", (300, 300)), "90000 pixels, over the limit of 40000", id="too many pixels"),
]
LIMITS = {"max_input_pixels": 40_000, "max_input_bytes": 8192}


@pytest.fixture
def limited(api_key, settings, provisioned):
    """A client whose limits make small images too big; the resources are the provisioned ones."""
    limited = dataclasses.replace(settings, **LIMITS)
    celery_app = create_celery_app(limited)
    yield keyed(create_app(limited, celery_app=celery_app).test_client(), api_key)
    celery_app.close()


@pytest.mark.parametrize(("_name", "data", "reason"), BAD_IMAGES)
def test_a_bad_file_part_is_422_naming_it_and_leaves_nothing(limited, queues, job_count, stored, _name, data, reason):
    answer = post_form(limited, "qwen-image-edit", form({"prompt": "x"}, images=[PNG, data]))

    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "invalid_params"
    assert list(answer.json["error"]["fields"]) == ["images.1"]
    assert reason in answer.json["error"]["fields"]["images.1"][0]
    assert "images.1" in answer.json["error"]["message"]
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(data_uri(encode("GIF"), "image/gif"), id="gif"),
        pytest.param("data:image/png;base64,not base64!", id="malformed base64"),
        pytest.param(data_uri(PNG, "text/plain"), id="not an image type"),
    ],
)
def test_a_bad_data_uri_is_422_naming_its_field_and_leaves_nothing(limited, queues, job_count, stored, value):
    answer = limited.post("/api/v1/camera-angle/jobs", json={"image": value, "move": "close_up"})

    assert answer.status_code == 422
    assert list(answer.json["error"]["fields"]) == ["image"]
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)


def test_image_and_parameter_problems_are_named_at_once_and_nothing_is_stored(client, queues, job_count, stored):
    answer = post_form(client, "camera-angle", form({"move": "somersault"}, image=[b"junk"]))

    assert answer.status_code == 422
    assert set(answer.json["error"]["fields"]) == {"image", "move"}
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)


def test_a_good_image_with_a_bad_parameter_is_not_stored(client, queues, job_count, stored):
    answer = client.post("/api/v1/camera-angle/jobs", json={"image": data_uri(PNG), "move": "rotate_left"})

    assert answer.status_code == 422
    assert list(answer.json["error"]["fields"]) == ["degrees"]
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        pytest.param(form({"move": "top_down"}, photo=[PNG]), 422, "invalid_params", "photo", id="unknown file part"),
        pytest.param({**form({"image": "s3://x/y.png", "move": "top_down"}, image=[PNG])}, 422, "invalid_params",
                     "image", id="image given both ways"),
        pytest.param({"params": '{"move": "top_down"}', "move": "close_up", "image": (io.BytesIO(PNG), "a.png")}, 422,
                     "invalid_params", "move", id="a parameter outside params"),
        pytest.param({"params": "{not json", "image": (io.BytesIO(PNG), "a.png")}, 400, "invalid_json", None,
                     id="params not JSON"),
        pytest.param({"params": "[]", "image": (io.BytesIO(PNG), "a.png")}, 400, "invalid_body", None,
                     id="params not an object"),
        pytest.param({"params": ["{}", "{}"], "image": (io.BytesIO(PNG), "a.png")}, 400, "invalid_form", None,
                     id="two params parts"),
        pytest.param(form(None, image=[PNG]), 422, "invalid_params", "move", id="no params part"),
    ],
)
def test_a_form_that_breaks_the_convention_is_refused_and_leaves_nothing(
    client, queues, job_count, stored, body, status, code, field
):
    answer = post_form(client, "camera-angle", body)

    assert answer.status_code == status
    assert answer.json["error"]["code"] == code
    if field:
        assert field in answer.json["error"]["fields"]
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)


BOUNDARY = "gpuorch-test-boundary"


def raw_form(params: bytes, *, as_file: bool, **files: bytes) -> dict:
    """A multipart body whose params part holds exactly ``params`` (a plain field, or a file part), then the files:
    built by hand, since the test client writes a field's text as UTF-8 itself."""
    disposition = 'form-data; name="params"' + ('; filename="request.json"' if as_file else "")
    parts = [(disposition, params)] + [(f'form-data; name="{name}"; filename="{name}.png"', data)
                                       for name, data in files.items()]
    body = b"".join(f"--{BOUNDARY}\r\nContent-Disposition: {head}\r\n\r\n".encode() + data + b"\r\n"
                    for head, data in parts)
    return {"data": body + f"--{BOUNDARY}--\r\n".encode(), "content_type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.mark.parametrize("as_file", [False, True], ids=["field", "file part"])
def test_a_params_part_in_utf8_reads_as_its_text(client, provisioned, as_file):
    params = '{"prompt": "neige \u2744 sur la for\u00eat"}'.encode()  # the escapes are Python's: UTF-8 bytes

    answer = client.post("/api/v1/qwen-image-edit/jobs", **raw_form(params, as_file=as_file, images=PNG))

    assert answer.status_code == 202, answer.json
    assert provisioned.jobs.get(answer.json["job_id"]).params["prompt"] == "neige \u2744 sur la for\u00eat"


@pytest.mark.parametrize("as_file", [False, True], ids=["field", "file part"])
@pytest.mark.parametrize(
    ("params", "problem"),
    [
        pytest.param(b'{"move": "top_down", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
                     f"deeper than {MAX_JSON_DEPTH} levels", id="nested a thousand levels"),
        pytest.param(b'{"move": "top_down", "x": ' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}",
                     f"deeper than {MAX_JSON_DEPTH} levels", id="nested one level too deep"),
        pytest.param(b'{"move": "top\xed\xa0\x80"}', "is not UTF-8", id="UTF-8-encoded surrogate"),
        pytest.param(b'{"move": "top\xff"}', "is not UTF-8", id="malformed UTF-8"),
    ],
)
def test_a_params_part_nested_too_deep_or_not_utf8_is_400_and_leaves_nothing(
    client, queues, job_count, stored, params, problem, as_file
):
    answer = client.post("/api/v1/camera-angle/jobs", **raw_form(params, as_file=as_file, image=PNG))

    assert answer.status_code == 400
    assert set(answer.json["error"]) == {"code", "message"}
    assert answer.json["error"]["code"] == "invalid_json"
    assert answer.json["error"]["message"].startswith("The params part ")
    assert problem in answer.json["error"]["message"]
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)


def small_body_client(api_key, settings, max_input_bytes: int, **extra):
    small = dataclasses.replace(settings, max_input_bytes=max_input_bytes, **extra)
    celery_app = create_celery_app(small)
    return keyed(create_app(small, celery_app=celery_app).test_client(), api_key), celery_app


def test_the_derived_body_limit_holds_the_most_images_at_their_largest_and_no_more(
    api_key, settings, provisioned, stored
):
    client, celery_app = small_body_client(api_key, settings, 64 * 1024)
    limit = request_body_limit(64 * 1024, 3)
    fullest = {"prompt": "x" * 2000, "negative_prompt": "y" * 2000, "images": [data_uri(png_of_exactly(64 * 1024))] * 3}

    accepted = client.post("/api/v1/qwen-image-edit/jobs", json=fullest)
    padded = json.dumps(fullest).replace('"x', '"' + "x" * (limit + 1 - len(json.dumps(fullest))) + "x", 1)
    refused = client.post("/api/v1/qwen-image-edit/jobs", data=padded, content_type="application/json")

    assert accepted.status_code == 202
    assert len(stored()) == 3
    assert (len(padded), refused.status_code) == (limit + 1, 413)
    celery_app.close()


@pytest.mark.parametrize("as_form", [False, True], ids=["json", "form"])
def test_a_body_over_the_set_limit_is_413_in_the_error_shape_and_leaves_nothing(
    api_key, settings, provisioned, queues, job_count, stored, as_form
):
    client, celery_app = small_body_client(api_key, settings, 8192, max_request_bytes=50_000)
    big = png_of_exactly(8192)
    if as_form:
        answer = post_form(client, "qwen-image-edit", form({"prompt": "x"}, images=[big] * 7))
    else:
        answer = client.post("/api/v1/qwen-image-edit/jobs", json={"prompt": "x", "images": [data_uri(big)] * 5})

    assert answer.status_code == 413
    assert answer.json["error"]["code"] == "request_entity_too_large"
    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)
    celery_app.close()


def test_when_the_record_cannot_be_written_the_stored_images_are_deleted(api_key, settings, provisioned, queues, stored):
    broken = dataclasses.replace(settings, job_table=f"{settings.job_table}_missing")
    celery_app = create_celery_app(broken)
    client = keyed(create_app(broken, celery_app=celery_app).test_client(), api_key)

    answer = post_form(client, "camera-angle", form({"move": "top_down"}, image=[PNG]))

    assert answer.status_code == 503
    assert (stored(), queues.total()) == ({}, 0)
    celery_app.close()


def test_when_the_bucket_refuses_an_image_nothing_is_recorded_or_queued(api_key, settings, provisioned, queues, job_count):
    broken = dataclasses.replace(settings, bucket=f"{settings.bucket}-missing")
    celery_app = create_celery_app(broken)
    client = keyed(create_app(broken, celery_app=celery_app).test_client(), api_key)

    answer = post_form(client, "qwen-image-edit", form({"prompt": "x"}, images=[PNG, PNG]))

    assert answer.status_code == 503
    assert (queues.total(), job_count()) == (0, 0)
    celery_app.close()


def test_when_publishing_fails_the_record_and_the_stored_images_are_removed(provisioned, queues, job_count, stored):
    def publish(job):
        assert len(stored()) == 1 and job_count() == 1  # both written before the message is sent
        raise OperationalError("broker unreachable")

    with pytest.raises(OperationalError):
        JobSubmitter(provisioned, publish).submit("camera-angle", {"image": data_uri(PNG), "move": "top_down"},
                                                  source="api")

    assert (stored(), queues.total(), job_count()) == ({}, 0, 0)
