"""The documented request bodies: each image also as a data: URI in JSON, or as a file part of a form."""

from __future__ import annotations

import jsonschema
import pytest

from gpuorch.workflows import BUILTIN_WORKFLOWS, load_workflows
from tests.webapp.images import data_uri, encode
from webapp.request_body import image_fields
from webapp.request_schemas import form_body_schema, json_body_schema

DATA = data_uri(encode("PNG"))


@pytest.fixture(scope="module")
def workflows():
    return load_workflows(BUILTIN_WORKFLOWS)


def json_body(workflows, name: str) -> dict:
    workflow = workflows.get(name)
    return json_body_schema(workflow.json_schema(), image_fields(workflow))


@pytest.mark.parametrize(
    ("workflow", "body", "valid"),
    [
        ("camera-angle", {"image": "s3://bucket/a.png", "move": "top_down"}, True),
        ("camera-angle", {"image": DATA, "move": "top_down"}, True),
        ("camera-angle", {"image": "data:image/png;name=a.png;base64,AAAA", "move": "top_down"}, True),
        ("camera-angle", {"image": "data:text/plain;base64,AAAA", "move": "top_down"}, False),
        ("camera-angle", {"image": "data:image/png,AAAA", "move": "top_down"}, False),
        ("camera-angle", {"image": DATA, "move": "rotate_left"}, False),
        ("qwen-image-edit", {"prompt": "x", "images": ["https://example.com/a.png", DATA, DATA]}, True),
        ("qwen-image-edit", {"prompt": "x", "images": [DATA] * 4}, False),
        ("qwen-image-edit", {"prompt": "x", "images": DATA}, False),
    ],
)
def test_the_json_body_takes_uris_and_data_uris_and_keeps_every_other_rule(workflows, workflow, body, valid):
    schema = json_body(workflows, workflow)

    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.Draft202012Validator(schema).is_valid(body) is valid


def test_widening_leaves_the_workflow_schema_alone_and_says_so_in_the_description(workflows):
    workflow = workflows.get("camera-angle")
    original = workflow.json_schema()

    widened = json_body(workflows, "camera-angle")

    assert workflow.json_schema() == original
    rest = {k: v for k, v in original.items() if k != "properties"}
    assert {k: v for k, v in widened.items() if k != "properties"} == rest
    assert widened["properties"]["image"]["description"].startswith(original["properties"]["image"]["description"])
    assert "data:image/" in widened["properties"]["image"]["description"]
    assert widened["properties"]["move"] == original["properties"]["move"]


@pytest.mark.parametrize(
    ("workflow", "parts", "valid"),
    [
        ("camera-angle", {"params": {"move": "top_down"}, "image": "<bytes>"}, True),
        ("camera-angle", {"params": {"move": "top_down", "image": "s3://bucket/a.png"}}, True),
        ("camera-angle", {"image": "<bytes>"}, False),
        ("camera-angle", {"params": {"move": "top_down"}, "photo": "<bytes>"}, False),
        ("qwen-image-edit", {"params": {"prompt": "x"}, "images": ["<a>", "<b>"]}, True),
        ("qwen-image-edit", {"params": {"prompt": "x"}, "images": ["<a>"] * 4}, False),
        ("qwen-image-edit", {"params": {"images": ["https://example.com/a.png"]}}, False),
    ],
)
def test_the_form_takes_params_and_a_file_part_per_image(workflows, workflow, parts, valid):
    schema = form_body_schema(json_body(workflows, workflow), image_fields(workflows.get(workflow)), "Form")

    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.Draft202012Validator(schema).is_valid(parts) is valid
