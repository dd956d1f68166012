"""The JSON Schema of each workflow's request body: one property per parameter, rules across fields."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

jsonschema = pytest.importorskip("jsonschema")

IMAGE = "s3://input-bucket/cat.png"


def test_shape_follows_the_declared_parameters(workflows):
    for workflow in workflows:
        schema = workflow.json_schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert schema["description"] == workflow.description
        assert list(schema["properties"]) == [p.name for p in workflow.params]
        assert schema["required"] == [p.name for p in workflow.params if p.required]
        assert all(prop["description"] for prop in schema["properties"].values())


def test_edit_properties(edit):
    props = edit.json_schema()["properties"]
    assert props["prompt"] | {"description": None} == {
        "description": None, "type": "string", "minLength": 1, "maxLength": 2000,
    }
    assert props["negative_prompt"]["default"] == ""
    assert props["images"]["type"] == "array"
    assert (props["images"]["minItems"], props["images"]["maxItems"]) == (1, 3)
    assert props["images"]["items"]["format"] == "uri"
    assert props["seed"] | {"description": None} == {
        "description": None, "type": "integer", "minimum": 0, "maximum": 2**53 - 1,
    }


def test_camera_properties(camera):
    schema = camera.json_schema()
    assert schema["properties"]["move"]["enum"][:3] == ["rotate_left", "rotate_right", "top_down"]
    assert schema["properties"]["degrees"]["enum"] == [45, 90]
    assert schema["title"] == "CameraAngleRequest"
    assert len(schema["allOf"]) == 3


CAMERA_CASES = [
    {"image": IMAGE, "move": "top_down"},
    {"image": IMAGE, "move": "rotate_left", "degrees": 45},
    {"image": IMAGE, "move": "rotate_right", "degrees": 90, "seed": 7},
    {"image": IMAGE, "move": "rotate_left"},
    {"image": IMAGE, "move": "rotate_left", "degrees": 30},
    {"image": IMAGE, "move": "close_up", "degrees": 45},
    {"image": IMAGE, "move": "fly"},
    {"image": "ftp://x/y", "move": "top_down"},
    {"image": IMAGE, "move": "top_down", "extra": 1},
    {"image": IMAGE, "move": "top_down", "seed": -5},
    {"move": "top_down"},
]

EDIT_CASES = [
    {"prompt": "p", "images": [IMAGE]},
    {"prompt": "p", "images": [IMAGE, IMAGE, IMAGE], "negative_prompt": "n", "seed": 0},
    {"prompt": "", "images": [IMAGE]},
    {"prompt": "p", "images": []},
    {"prompt": "p", "images": [IMAGE] * 4},
    {"prompt": "p", "images": ["http://insecure/x.png"]},
    {"prompt": "p" * 2001, "images": [IMAGE]},
    {"images": [IMAGE]},
]


@pytest.mark.parametrize(("workflow_name", "request_body"), [("camera-angle", c) for c in CAMERA_CASES] + [
    ("qwen-image-edit", c) for c in EDIT_CASES
])
def test_json_schema_and_request_schema_agree(workflows, workflow_name, request_body):
    workflow = workflows.get(workflow_name)
    json_ok = jsonschema.Draft202012Validator(workflow.json_schema()).is_valid(request_body)
    try:
        workflow.request_schema().load(request_body)
        marshmallow_ok = True
    except ValidationError:
        marshmallow_ok = False
    assert json_ok == marshmallow_ok
