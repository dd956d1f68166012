"""Camera moves: the published Chinese phrase for every move, and which degrees each move takes."""

from __future__ import annotations

import json
import re

import pytest

from gpuorch.workflows import WorkflowDefinitionError, load_camera_moves
from gpuorch.workflows.camera import parse_camera_moves
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS

TABLE = BUILTIN_WORKFLOWS / "camera-angle" / "camera_moves.json"


@pytest.fixture(scope="module")
def moves():
    return load_camera_moves(TABLE)


@pytest.mark.parametrize(
    ("move", "degrees", "phrase"),
    [
        ("rotate_left", 45, "将镜头向左旋转45度"),
        ("rotate_left", 90, "将镜头向左旋转90度"),
        ("rotate_right", 45, "将镜头向右旋转45度"),
        ("rotate_right", 90, "将镜头向右旋转90度"),
        ("top_down", None, "将镜头转为俯视"),
        ("close_up", None, "将镜头转为特写镜头"),
        ("wide_angle", None, "将镜头转为广角镜头"),
        ("move_forward", None, "将镜头向前移动"),
        ("move_left", None, "将镜头向左移动"),
        ("move_right", None, "将镜头向右移动"),
        ("move_down", None, "将镜头向下移动"),
    ],
)
def test_phrase(moves, move, degrees, phrase):
    assert moves.phrase(move, degrees) == phrase


@pytest.mark.parametrize(
    ("move", "degrees", "problem"),
    [
        ("rotate_left", 45, None),
        ("rotate_right", 90, None),
        ("close_up", None, None),
        ("rotate_left", None, "Required for move 'rotate_left': one of 45, 90."),
        ("rotate_right", 30, "Move 'rotate_right' allows 45, 90 degrees, not 30."),
        ("top_down", 45, "Only rotations take degrees; move 'top_down' does not."),
        ("move_down", 90, "Only rotations take degrees; move 'move_down' does not."),
    ],
)
def test_degrees_problem(moves, move, degrees, problem):
    assert moves.degrees_problem(move, degrees) == problem
    if problem is not None:
        with pytest.raises(ValueError, match=re.escape(problem)):
            moves.phrase(move, degrees)


def test_table_summary(moves):
    assert moves.rotations() == ["rotate_left", "rotate_right"]
    assert moves.all_degrees() == [45, 90]
    assert {"top_down", "close_up", "wide_angle", "move_forward", "move_left", "move_right", "move_down"} < set(
        moves.names()
    )


def test_unknown_move_is_a_key_error(moves):
    with pytest.raises(KeyError):
        moves.degrees_problem("barrel_roll", None)


def _move(**entry):
    return {"moves": {"spin": {"phrase": "转", "description": "Spin.", **entry}}}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], 'non-empty "moves" object'),
        ({"moves": {}}, 'non-empty "moves" object'),
        ({"moves": {"spin": {"phrase": "转", "description": "d"}}, "extra": 1}, "unknown key(s) ['extra']"),
        ({"moves": {"Spin": {"phrase": "转", "description": "d"}}}, "move names are lower_case_words"),
        (_move(phrase=""), "moves.spin.phrase: expected a non-empty string"),
        (_move(description=None), "moves.spin.description: expected a non-empty string"),
        (_move(degrees=[45, "90"]), "moves.spin.degrees: expected a list of whole angles"),
        (_move(degrees=[0]), "moves.spin.degrees: expected a list of whole angles"),
        (_move(degrees=[45, 45], phrase="转{degrees}度"), "angles are listed twice"),
        (_move(degrees=[45]), "a phrase holds {degrees} exactly when the move lists degrees"),
        (_move(phrase="转{degrees}度"), "a phrase holds {degrees} exactly when the move lists degrees"),
        (_move(speed=3), "moves.spin: unknown key(s) ['speed']"),
    ],
)
def test_bad_tables_are_refused(data, problem):
    with pytest.raises(ValueError) as caught:
        parse_camera_moves(data)
    assert problem in str(caught.value)


def test_a_broken_table_file_is_named(tmp_path):
    path = tmp_path / "moves.json"
    path.write_text(json.dumps(_move(degrees=[45])), encoding="utf-8")
    with pytest.raises(WorkflowDefinitionError) as caught:
        load_camera_moves(path)
    assert caught.value.path == path
    assert str(path) in str(caught.value)
