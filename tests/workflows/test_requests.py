"""Request validation: each bad field is named with a reason; good requests come back normalized."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from gpuorch.workflows import MAX_SAFE_SEED

IMAGE = "s3://input-bucket/photos/cat.png"
HTTPS_IMAGE = "https://example.com/b.jpg?x=1"
CAMERA_OK = {"image": IMAGE, "move": "top_down"}
EDIT_OK = {"prompt": "Make the sky purple", "images": [IMAGE]}


def errors_of(workflow, request) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        workflow.request_schema().load(request)
    return caught.value.normalized_messages()


@pytest.mark.parametrize(
    ("request_body", "normalized"),
    [
        (CAMERA_OK, CAMERA_OK),
        ({**CAMERA_OK, "move": "rotate_left", "degrees": 45}, {**CAMERA_OK, "move": "rotate_left", "degrees": 45}),
        ({**CAMERA_OK, "move": "rotate_right", "degrees": 90}, {**CAMERA_OK, "move": "rotate_right", "degrees": 90}),
        ({**CAMERA_OK, "seed": 0}, {**CAMERA_OK, "seed": 0}),
        ({**CAMERA_OK, "seed": MAX_SAFE_SEED}, {**CAMERA_OK, "seed": MAX_SAFE_SEED}),
        ({**CAMERA_OK, "image": HTTPS_IMAGE}, {**CAMERA_OK, "image": HTTPS_IMAGE}),
    ],
)
def test_camera_requests_that_pass(camera, request_body, normalized):
    assert camera.request_schema().load(request_body) == normalized


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"move": "top_down"}, "image", "Missing data for required field."),
        ({"image": IMAGE}, "move", "Missing data for required field."),
        ({**CAMERA_OK, "image": "ftp://host/x.png"}, "image", "must be an s3://bucket/key or https:// URI"),
        ({**CAMERA_OK, "image": "http://host/x.png"}, "image", "must be an s3://bucket/key or https:// URI"),
        ({**CAMERA_OK, "image": "s3://Bad_Bucket/x.png"}, "image", "is not a valid S3 bucket name"),
        ({**CAMERA_OK, "image": "s3://bucket"}, "image", "needs an object key"),
        ({**CAMERA_OK, "image": 42}, "image", "Not a valid string."),
        ({**CAMERA_OK, "move": "barrel_roll"}, "move", "Must be one of: rotate_left, rotate_right"),
        ({**CAMERA_OK, "move": "rotate_left"}, "degrees", "Required for move 'rotate_left': one of 45, 90."),
        ({**CAMERA_OK, "degrees": 45}, "degrees", "Only rotations take degrees; move 'top_down' does not."),
        ({**CAMERA_OK, "move": "rotate_left", "degrees": 30}, "degrees", "Must be one of: 45, 90."),
        ({**CAMERA_OK, "move": "rotate_left", "degrees": "45"}, "degrees", "Not a valid integer."),
        ({**CAMERA_OK, "seed": -1}, "seed", "greater than or equal to 0"),
        ({**CAMERA_OK, "seed": MAX_SAFE_SEED + 1}, "seed", "less than or equal to"),
        ({**CAMERA_OK, "seed": True}, "seed", "Not a valid integer."),
        ({**CAMERA_OK, "seed": 1.5}, "seed", "Not a valid integer."),
        ({**CAMERA_OK, "seed": None}, "seed", "Field may not be null."),
        ({**CAMERA_OK, "prompt": "hello"}, "prompt", "Unknown field."),
    ],
)
def test_camera_requests_that_fail(camera, request_body, field, reason):
    errors = errors_of(camera, request_body)
    assert list(errors) == [field]
    assert any(reason in message for message in errors[field]), errors


@pytest.mark.parametrize(
    ("request_body", "normalized"),
    [
        (EDIT_OK, {**EDIT_OK, "negative_prompt": ""}),
        ({**EDIT_OK, "prompt": "  trim me \n"}, {**EDIT_OK, "prompt": "trim me", "negative_prompt": ""}),
        ({**EDIT_OK, "negative_prompt": "blurry"}, {**EDIT_OK, "negative_prompt": "blurry"}),
        ({**EDIT_OK, "images": [IMAGE] * 3}, {**EDIT_OK, "images": [IMAGE] * 3, "negative_prompt": ""}),
        ({**EDIT_OK, "prompt": "x" * 2000}, {**EDIT_OK, "prompt": "x" * 2000, "negative_prompt": ""}),
    ],
)
def test_edit_requests_that_pass(edit, request_body, normalized):
    assert edit.request_schema().load(request_body) == normalized


@pytest.mark.parametrize(
    ("request_body", "field", "reason"),
    [
        ({"images": [IMAGE]}, "prompt", "Missing data for required field."),
        ({**EDIT_OK, "prompt": ""}, "prompt", "Must not be blank."),
        ({**EDIT_OK, "prompt": "   "}, "prompt", "Must not be blank."),
        ({**EDIT_OK, "prompt": "x" * 2001}, "prompt", "Longer than 2000 characters."),
        ({**EDIT_OK, "negative_prompt": "x" * 2001}, "negative_prompt", "Longer than 2000 characters."),
        ({**EDIT_OK, "negative_prompt": 7}, "negative_prompt", "Not a valid string."),
        ({"prompt": "p"}, "images", "Missing data for required field."),
        ({**EDIT_OK, "images": []}, "images", "Must hold between 1 and 3 images, not 0."),
        ({**EDIT_OK, "images": [IMAGE] * 4}, "images", "Must hold between 1 and 3 images, not 4."),
        ({**EDIT_OK, "images": IMAGE}, "images", "Not a valid list of image URIs."),
        ({**EDIT_OK, "images": [IMAGE, "nope"]}, "images", "Item 2: Not a valid image URI"),
        ({**EDIT_OK, "images": [IMAGE, 5]}, "images", "Item 2: Not a valid string."),
        ({**EDIT_OK, "image": IMAGE}, "image", "Unknown field."),
    ],
)
def test_edit_requests_that_fail(edit, request_body, field, reason):
    errors = errors_of(edit, request_body)
    assert list(errors) == [field]
    assert all(isinstance(m, str) for m in errors[field])
    assert any(reason in message for message in errors[field]), errors


def test_every_problem_is_reported_at_once(camera):
    errors = errors_of(camera, {"image": "nope", "move": "rotate_left", "colour": "red"})
    assert set(errors) == {"image", "degrees", "colour"}


def test_a_body_that_is_not_an_object_is_refused(edit):
    assert errors_of(edit, ["not", "an", "object"]) == {"_schema": ["Invalid input type."]}


def test_normalized_requests_validate_again_unchanged(camera, edit):
    # The worker may validate a queued request a second time; it must not change or fail.
    for workflow, body in ((camera, {**CAMERA_OK, "move": "rotate_left", "degrees": 90}), (edit, EDIT_OK)):
        once = workflow.request_schema().load(body)
        assert workflow.request_schema().load(once) == once


def test_image_inputs_and_uris_follow_binding_order(camera, edit):
    images = [IMAGE, "https://example.com/b.png"]
    params = edit.request_schema().load({**EDIT_OK, "images": images})
    assert edit.image_uris(params) == images
    assert edit.image_inputs(params) == {"images": images}
    assert camera.image_inputs(CAMERA_OK) == {"image": [IMAGE]}
    assert [p.name for p in camera.image_params] == ["image"]
