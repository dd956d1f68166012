"""flatten_fields: marshmallow's nested messages become {dotted.field: [reasons]}."""

import pytest

from webapp.errors import error_body, flatten_fields, invalid_params_message


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ({"prompt": ["Missing data for required field."]}, {"prompt": ["Missing data for required field."]}),
        ({"images": {0: ["Not a valid string."]}}, {"images.0": ["Not a valid string."]}),
        ({"a": {"b": {"c": ["bad"]}}, "d": ["worse"]}, {"a.b.c": ["bad"], "d": ["worse"]}),
        ({"_schema": ["Invalid input type."]}, {"_schema": ["Invalid input type."]}),
        (["whole body"], {"_schema": ["whole body"]}),
        ({"x": [{"y": ["one"]}, {"y": ["two"]}]}, {"x.y": ["one", "two"]}),
        ({"n": "a lone string"}, {"n": ["a lone string"]}),
        ({}, {}),
    ],
)
def test_flatten_fields(messages, expected):
    assert flatten_fields(messages) == expected


def test_error_body_has_fields_only_when_some_field_is_to_blame():
    assert error_body("job_not_found", "No such job.") == {"error": {"code": "job_not_found", "message": "No such job."}}
    assert error_body("invalid_params", "Bad.", {"seed": {"x": ["no"]}}) == {
        "error": {"code": "invalid_params", "message": "Bad.", "fields": {"seed.x": ["no"]}}
    }


def test_invalid_params_message_names_the_fields():
    assert invalid_params_message({"seed": ["x"], "images": {1: ["y"]}}) == "Invalid request parameters: images.1, seed."
    assert invalid_params_message({}) == "Invalid request parameters."
