"""Inline images, decided without storing anything: data: URIs decoded, images checked, URIs put in their place."""

from __future__ import annotations

import dataclasses

import pytest

from gpuorch.inputs import InputRejected
from gpuorch.settings import Settings
from gpuorch.jobs.submission import (
    InlineImage,
    decode_data_uri,
    field_path,
    inline_fields,
    input_key,
    stage_inline_images,
)
from gpuorch.workflows import BUILTIN_WORKFLOWS, load_workflows
from tests.webapp.images import data_uri, encode, png_of_exactly

PNG = encode("PNG")
JOB = "job-1"


@pytest.fixture(scope="module")
def workflows():
    return load_workflows(BUILTIN_WORKFLOWS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(data_uri(PNG), PNG, id="png"),
        pytest.param(data_uri(PNG, "image/jpeg"), PNG, id="declared type does not decide the format"),
        pytest.param("DATA:IMAGE/PNG;BASE64," + data_uri(PNG).partition(",")[2], PNG, id="case-insensitive"),
        pytest.param("data:image/png;name=cat.png;base64," + data_uri(PNG).partition(",")[2], PNG, id="parameters"),
        pytest.param("data:image/png;base64,", b"", id="empty data"),
    ],
)
def test_a_base64_image_data_uri_decodes_to_its_bytes(text, expected):
    assert decode_data_uri(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("data:image/png;base64", "needs a comma", id="no comma"),
        pytest.param("data:text/plain;base64,aGk=", "image media type, not 'text/plain'", id="not an image type"),
        pytest.param("data:;base64,aGk=", "image media type, not 'none'", id="no media type"),
        pytest.param("data:image/png,%89PNG", "must be base64-encoded", id="percent-encoded"),
        pytest.param("data:image/png;base64,aGk", "malformed", id="missing padding"),
        pytest.param("data:image/png;base64,aG k=", "malformed", id="white space"),
        pytest.param("data:image/png;base64,aG-_", "malformed", id="url-safe alphabet"),
        pytest.param("data:image/png;base64,aGé=", "malformed", id="non-ascii"),
    ],
)
def test_a_data_uri_that_is_not_base64_image_data_is_refused_saying_why(text, reason):
    with pytest.raises(InputRejected, match=reason):
        decode_data_uri(text)


@pytest.mark.parametrize(
    ("field", "image_format", "key"),
    [
        ("image", "PNG", "inputs/job-1/image.png"),
        ("images.0", "JPEG", "inputs/job-1/images.0.jpg"),
        ("images.2", "WEBP", "inputs/job-1/images.2.webp"),
        ("images.1", "MPO", "inputs/job-1/images.1.jpg"),
        ("image", None, "inputs/job-1/image"),
    ],
)
def test_input_key_names_the_job_and_the_field(field, image_format, key):
    assert input_key(JOB, field, image_format) == key


@pytest.mark.parametrize(
    ("workflow", "params", "fields"),
    [
        pytest.param("camera-angle", {"image": "s3://b/k.png", "move": "top_down"}, [], id="uri only"),
        pytest.param("camera-angle", {"image": data_uri(PNG)}, ["image"], id="data uri"),
        pytest.param("camera-angle", {"image": InlineImage(PNG)}, ["image"], id="bytes"),
        pytest.param("camera-angle", {"image": [InlineImage(PNG)]}, ["image.0"], id="list given to a single image"),
        pytest.param("qwen-image-edit", {"images": ["s3://b/k.png", data_uri(PNG), InlineImage(PNG)]},
                     ["images.1", "images.2"], id="mixed list"),
        pytest.param("qwen-image-edit", {"prompt": data_uri(PNG), "images": "s3://b/k"}, [], id="not an image param"),
        pytest.param("qwen-image-edit", {}, [], id="absent"),
    ],
)
def test_inline_fields_finds_each_inline_image_by_its_dotted_field(workflows, workflow, params, fields):
    found = inline_fields(workflows.get(workflow), params)

    assert [field_path(name, index) for name, index, _ in found] == fields


def test_staging_puts_an_s3_uri_where_each_inline_image_was(workflows):
    settings = Settings(bucket="jobs")
    jpeg = encode("JPEG")
    params = {"prompt": "x", "images": ["s3://other/a.png", data_uri(PNG), InlineImage(jpeg)]}

    replaced, staged, errors, _too_large = stage_inline_images(settings, workflows.get("qwen-image-edit"), params, JOB)

    assert replaced == {
        "prompt": "x",
        "images": ["s3://other/a.png", "s3://jobs/inputs/job-1/images.1.png", "s3://jobs/inputs/job-1/images.2.jpg"],
    }
    assert [(s.field, s.key, s.data, s.content_type) for s in staged] == [
        ("images.1", "inputs/job-1/images.1.png", PNG, "image/png"),
        ("images.2", "inputs/job-1/images.2.jpg", jpeg, "image/jpeg"),
    ]
    assert errors == {}
    assert params["images"][1] == data_uri(PNG)  # the caller's parameters are left as they were


@pytest.mark.parametrize(
    ("limits", "value", "reason"),
    [
        pytest.param({}, InlineImage(b"GIF89a not really"), "not an image in an accepted format", id="not an image"),
        pytest.param({}, InlineImage(encode("GIF")), "not an image in an accepted format", id="gif"),
        pytest.param({}, InlineImage(b""), "empty", id="empty"),
        pytest.param(
            {"max_input_pixels": 100}, InlineImage(PNG), "16x12 = 192 pixels, over the limit of 100", id="pixels"
        ),
        pytest.param(
            {"max_input_bytes": 1000}, InlineImage(png_of_exactly(1001)), "1001 bytes, over the limit of 1000",
            id="bytes",
        ),
        pytest.param({}, "data:image/png;base64,###", "malformed", id="bad base64"),
    ],
)
def test_a_refused_image_is_named_by_its_field_and_nothing_is_staged(workflows, limits, value, reason):
    settings = dataclasses.replace(Settings(bucket="jobs"), **limits)
    params = {"prompt": "x", "images": [InlineImage(encode("PNG", (2, 2))), value]}

    replaced, staged, errors, too_large = stage_inline_images(settings, workflows.get("qwen-image-edit"), params, JOB)

    assert list(errors) == ["images.1"]
    assert reason in errors["images.1"][0]
    assert too_large == (["images.1"] if "bytes, over the limit" in reason else [])  # the API's 413
    # The refused image still gets a URI, so validation does not report its field a second time.
    assert replaced["images"][1] == "s3://jobs/inputs/job-1/images.1"
    assert [s.field for s in staged] == ["images.0"]
