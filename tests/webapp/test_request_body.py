"""The multipart convention, the body size limit and the nesting depth, as pure decisions."""

from __future__ import annotations

import json

import pytest

from gpuorch.errors import ParamsInvalid
from gpuorch.jobs.submission import InlineImage
from gpuorch.workflows import BUILTIN_WORKFLOWS, load_workflows
from webapp.request_body import (
    base64_size,
    form_params,
    image_capacity,
    image_fields,
    nests_deeper_than,
    request_body_limit,
)

CAMERA = {"image": False}
EDIT = {"images": True}


@pytest.mark.parametrize(
    ("params", "files", "images", "expected"),
    [
        pytest.param({"move": "top_down"}, {"image": [b"a"]}, CAMERA, {"move": "top_down", "image": InlineImage(b"a")},
                     id="one image"),
        pytest.param({"prompt": "x"}, {"images": [b"a", b"b", b"c"]}, EDIT,
                     {"prompt": "x", "images": [InlineImage(b"a"), InlineImage(b"b"), InlineImage(b"c")]},
                     id="a list, in part order"),
        pytest.param({"prompt": "x", "images": ["s3://b/k"]}, {}, EDIT, {"prompt": "x", "images": ["s3://b/k"]},
                     id="images in params only"),
        pytest.param({}, {"image": [b""]}, CAMERA, {"image": InlineImage(b"")}, id="an empty file is still an image"),
    ],
)
def test_file_parts_become_the_values_of_their_image_parameters(params, files, images, expected):
    assert form_params(params, files, images) == expected


@pytest.mark.parametrize(
    ("params", "files", "images", "others", "errors"),
    [
        pytest.param({}, {"photo": [b"a"]}, CAMERA, (), {"photo": "named after an image parameter (image)"},
                     id="unknown part"),
        pytest.param({}, {"image": [b"a"]}, {}, (), {"image": "none: this workflow takes no images"},
                     id="a workflow without images"),
        pytest.param({"image": "s3://b/k"}, {"image": [b"a"]}, CAMERA, (), {"image": "given both"}, id="both ways"),
        pytest.param({}, {"image": [b"a", b"b"]}, CAMERA, (), {"image": "takes one image, not 2 file parts"},
                     id="two parts for one image"),
        pytest.param({}, {}, CAMERA, ("move",), {"move": "put parameters in params"}, id="a text field"),
        pytest.param({}, {"photo": [b"a"]}, CAMERA, ("move",), {"photo": "image parameter", "move": "params"},
                     id="every problem at once"),
    ],
)
def test_parts_that_break_the_convention_are_named(params, files, images, others, errors):
    with pytest.raises(ParamsInvalid) as refused:
        form_params(params, files, images, others)

    assert set(refused.value.errors) == set(errors)
    for name, reason in errors.items():
        assert reason in refused.value.errors[name][0]


@pytest.mark.parametrize(("size", "encoded"), [(0, 0), (1, 4), (2, 4), (3, 4), (4, 8), (25 * 1024 * 1024, 34952536)])
def test_base64_size(size, encoded):
    assert base64_size(size) == encoded


@pytest.mark.parametrize(
    ("max_input_bytes", "max_images", "limit"),
    [
        (3000, 1, 4000 + 1024 + 256 * 1024),
        (3000, 3, 3 * (4000 + 1024) + 256 * 1024),
        (25 * 1024 * 1024, 3, 3 * (34952536 + 1024) + 256 * 1024),
        (25 * 1024 * 1024, 0, 256 * 1024),
    ],
)
def test_the_body_limit_holds_the_most_images_as_base64_with_their_parameters(max_input_bytes, max_images, limit):
    assert request_body_limit(max_input_bytes, max_images) == limit


@pytest.mark.parametrize(
    ("workflow", "fields", "capacity"),
    [("camera-angle", {"image": False}, 1), ("qwen-image-edit", {"images": True}, 3)],
)
def test_image_fields_and_capacity_of_the_shipped_workflows(workflow, fields, capacity):
    loaded = load_workflows(BUILTIN_WORKFLOWS).get(workflow)

    assert (image_fields(loaded), image_capacity(loaded)) == (fields, capacity)


def nested_value(levels: int) -> object:
    """Arrays and objects, alternately, ``levels`` levels deep; its strings hold brackets, quotes and backslashes."""
    value: object = "leaf [{\\\"}]"
    for level in range(levels):
        value = [1, value] if level % 2 else {"k": value, "other": "]"}
    return value


@pytest.mark.parametrize("levels", range(0, 21))
@pytest.mark.parametrize("limit", [1, 2, 16])
def test_nesting_depth_of_json_values(levels, limit):
    text = json.dumps(nested_value(levels)).encode()

    assert nests_deeper_than(text, limit) is (levels > limit)


@pytest.mark.parametrize(
    ("text", "limit", "deeper"),
    [
        pytest.param(b'{"a": "[[[[[[", "b": "{{{{"}', 1, False, id="brackets in strings"),
        pytest.param(b'{"a": "\\"[[[[", "b": 1}', 1, False, id="after an escaped quote"),
        pytest.param(b'{"a": "\\\\", "b": [[1]]}', 2, True, id="after an escaped backslash"),
        pytest.param(b'{"a": "\\\\\\"[[", "b": [1]}', 2, False, id="after an escaped backslash and quote"),
        pytest.param(b"[[[", 2, True, id="levels left open"),
        pytest.param(b"[[[]]", 2, True, id="one left open"),
        pytest.param(b"[" * 100_000, 16, True, id="a hundred thousand levels"),
        pytest.param(b"[" + b"[]," * 100_000 + b"[]]", 1, True, id="many side by side, one too deep"),
        pytest.param(b"[" + b"[]," * 100_000 + b"[]]", 2, False, id="many side by side"),
        pytest.param('{"\u00e9": ["\u2744"]}'.encode(), 1, True, id="UTF-8 text"),
    ],
)
def test_nesting_depth_counts_only_brackets_outside_strings(text, limit, deeper):
    assert nests_deeper_than(text, limit) is deeper
