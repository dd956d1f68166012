"""Each params.json type on its own: what its field accepts, refuses and how it normalizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from marshmallow import ValidationError

from gpuorch.workflows.folders import PARAM_TYPES, parse_param

BIND = [{"node": "1", "input": "x"}]


def make(**spec):
    # Required unless it declares a default, the combination the loader accepts for a bound parameter.
    base = {"name": "p", "description": "A parameter.", "bind": BIND, "required": "default" not in spec}
    return parse_param(base | spec, "params[0]", Path("."))


@pytest.mark.parametrize(
    ("spec", "value", "loaded"),
    [
        ({"type": "string", "max_length": 5}, " ab ", "ab"),
        ({"type": "string", "max_length": 5, "choices": ["a", "b"]}, "b", "b"),
        ({"type": "integer", "minimum": 1, "maximum": 3}, 3, 3),
        ({"type": "number", "minimum": 0, "maximum": 1}, 0.25, 0.25),
        ({"type": "number"}, 2, 2.0),
        ({"type": "boolean", "required": True}, False, False),
        ({"type": "seed"}, 0, 0),
    ],
)
def test_accepted_values(spec, value, loaded):
    assert make(**spec).field().deserialize(value) == loaded


@pytest.mark.parametrize(
    ("spec", "value", "reason"),
    [
        ({"type": "string", "max_length": 5}, "abcdef", "Longer than 5 characters."),
        ({"type": "string", "max_length": 5, "min_length": 2}, " a ", "Shorter than 2 characters."),
        ({"type": "string", "max_length": 5, "choices": ["a", "b"]}, "c", "Must be one of: a, b."),
        ({"type": "integer", "minimum": 1, "maximum": 3}, 4, "less than or equal to 3"),
        ({"type": "integer"}, "4", "Not a valid integer."),
        ({"type": "integer"}, 4.5, "Not a valid integer."),
        ({"type": "number"}, "0.5", "Not a valid number."),
        ({"type": "number"}, True, "Not a valid number."),
        ({"type": "number"}, float("nan"), "Special numeric values"),
        ({"type": "boolean", "required": True}, "true", "Not a valid boolean."),
        ({"type": "boolean", "required": True}, 1, "Not a valid boolean."),
    ],
)
def test_refused_values(spec, value, reason):
    with pytest.raises(ValidationError) as caught:
        make(**spec).field().deserialize(value)
    assert any(reason in m for m in caught.value.messages), caught.value.messages


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"type": "integer", "minimum": 5, "maximum": 1}, "maximum is below minimum"),
        ({"type": "seed", "minimum": 5, "maximum": 1}, "maximum is below minimum"),
        ({"type": "number", "choices": ["a"]}, "'choices' must be a non-empty list of numbers"),
        ({"type": "integer", "minimum": 1.5}, "'minimum' must be an integer"),
        ({"type": "boolean", "default": "yes"}, "'default' must be a boolean"),
        ({"type": "seed", "default": 3}, "unknown key(s) 'default'"),
        ({"type": "string", "max_length": 5, "default": "x", "required": True}, "cannot have a default"),
        ({"type": "string", "max_length": 5, "required": False}, "an optional parameter that binds needs a default"),
        ({"type": "integer", "minimum": 1, "default": 0}, "the default 0 is not valid"),
        ({"type": "string", "max_length": 0}, "'max_length' must be a positive integer"),
        ({"type": "image", "required": False}, "an image parameter must be required"),
        ({"type": "camera_move", "required": True, "moves": "m.json", "degrees_param": "d"}, "file not found"),
    ],
)
def test_refused_declarations(spec, problem):
    with pytest.raises(Exception) as caught:
        make(**spec)
    assert problem in str(caught.value)


def test_every_type_is_registered_under_its_kind():
    assert set(PARAM_TYPES) == {
        "string", "integer", "number", "boolean", "seed", "image", "image_list", "camera_move",
    }
    assert all(cls.kind == kind for kind, cls in PARAM_TYPES.items())
