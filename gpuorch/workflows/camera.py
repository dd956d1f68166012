"""Camera moves of the multiple-angles LoRA: English move names to the Chinese phrases it was trained on."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marshmallow import fields, validate

from gpuorch.workflows.errors import BindError, WorkflowDefinitionError
from gpuorch.workflows.params import IntegerParam, Param
from gpuorch.workflows.spec import ABSENT, SpecReader, Target

__all__ = ["CameraMove", "CameraMoveParam", "CameraMoves", "load_camera_moves", "parse_camera_moves"]

DEGREES_MARK = "{degrees}"


@dataclass(frozen=True)
class CameraMove:
    """One move: its phrase (with ``{degrees}`` where a rotation's angle goes) and allowed angles."""

    name: str
    phrase: str
    description: str
    degrees: tuple[int, ...] = ()

    @property
    def is_rotation(self) -> bool:
        return bool(self.degrees)


@dataclass(frozen=True)
class CameraMoves:
    """The move table; every decision about a (move, degrees) pair is made here."""

    moves: Mapping[str, CameraMove]

    def names(self) -> list[str]:
        return list(self.moves)

    def rotations(self) -> list[str]:
        return [name for name, move in self.moves.items() if move.is_rotation]

    def all_degrees(self) -> list[int]:
        """Every angle some rotation allows, ascending."""
        return sorted({d for move in self.moves.values() for d in move.degrees})

    def degrees_problem(self, move: str, degrees: int | None) -> str | None:
        """Why ``degrees`` does not fit ``move`` (a message for the degrees field), or None."""
        entry = self.moves.get(move)
        if entry is None:
            raise KeyError(move)
        allowed = ", ".join(str(d) for d in entry.degrees)
        if entry.is_rotation and degrees is None:
            return f"Required for move '{move}': one of {allowed}."
        if not entry.is_rotation and degrees is not None:
            return f"Only rotations take degrees; move '{move}' does not."
        if entry.is_rotation and degrees not in entry.degrees:
            return f"Move '{move}' allows {allowed} degrees, not {degrees}."
        return None

    def phrase(self, move: str, degrees: int | None = None) -> str:
        """The prompt phrase for the move; ValueError when the degrees do not fit it."""
        problem = self.degrees_problem(move, degrees)
        if problem is not None:
            raise ValueError(problem)
        return self.moves[move].phrase.replace(DEGREES_MARK, str(degrees))


def load_camera_moves(path: Path) -> CameraMoves:
    """Read a move table file; WorkflowDefinitionError names the file and the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkflowDefinitionError(path, "file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowDefinitionError(path, f"not readable JSON: {exc}") from None
    try:
        return parse_camera_moves(data)
    except ValueError as exc:
        raise WorkflowDefinitionError(path, str(exc)) from None


def parse_camera_moves(data: Any) -> CameraMoves:
    """Build the table from its JSON form ``{"description": ..., "moves": {name: {...}}}``."""
    if not isinstance(data, dict) or not isinstance(data.get("moves"), dict) or not data["moves"]:
        raise ValueError('expected an object with a non-empty "moves" object')
    extra = set(data) - {"description", "moves"}
    if extra:
        raise ValueError(f"unknown key(s) {sorted(extra)}")
    moves = {name: _parse_move(name, entry) for name, entry in data["moves"].items()}
    return CameraMoves(MappingProxyType(moves))


def _parse_move(name: str, entry: Any) -> CameraMove:
    where = f"moves.{name}"
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"{where}: move names are lower_case_words, not {name!r}")
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object")
    extra = set(entry) - {"phrase", "description", "degrees"}
    if extra:
        raise ValueError(f"{where}: unknown key(s) {sorted(extra)}")
    phrase, description = entry.get("phrase"), entry.get("description")
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"{where}.phrase: expected a non-empty string")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"{where}.description: expected a non-empty string")
    degrees = entry.get("degrees", [])
    if not isinstance(degrees, list) or not all(type(d) is int and 0 < d <= 360 for d in degrees):
        raise ValueError(f"{where}.degrees: expected a list of whole angles between 1 and 360")
    if len(set(degrees)) != len(degrees):
        raise ValueError(f"{where}.degrees: angles are listed twice")
    # A rotation's phrase must say where its angle goes, and only a rotation may have one.
    if bool(degrees) != (DEGREES_MARK in phrase):
        raise ValueError(f"{where}: a phrase holds {DEGREES_MARK} exactly when the move lists degrees")
    return CameraMove(name=name, phrase=phrase, description=description, degrees=tuple(degrees))


@dataclass(frozen=True, kw_only=True)
class CameraMoveParam(Param):
    """A named camera move, bound as its phrase; a rotation takes its angle from ``degrees_param``.

    ``moves`` in params.json names the table file, relative to the workflow folder.
    """

    kind = "camera_move"
    moves: CameraMoves
    degrees_param: str

    @classmethod
    def from_spec(cls, spec: SpecReader, folder: Path, **common: Any) -> CameraMoveParam:
        if not common["required"]:
            raise spec.problem("a camera_move parameter must be required")
        table = spec.take("moves", "a non-empty string")
        path = (folder / table).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise spec.problem(f"the moves table {table!r} must be inside the workflow folder")
        return cls(
            **common,
            targets=spec.targets(),
            moves=load_camera_moves(path),
            degrees_param=spec.take("degrees_param", "a parameter name (lower_case)"),
        )

    def _field(self, **options: Any) -> fields.Field:
        return fields.String(validate=validate.OneOf(self.moves.names()), **options)

    def _json_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": self.moves.names()}

    def json_schema_rules(self) -> list[dict[str, Any]]:
        def when(moves: list[str]) -> dict[str, Any]:
            return {"properties": {self.name: {"enum": moves}}, "required": [self.name]}

        rules: list[dict[str, Any]] = [
            {
                "if": when([name]),
                "then": {
                    "required": [self.degrees_param],
                    "properties": {self.degrees_param: {"enum": list(self.moves.moves[name].degrees)}},
                },
            }
            for name in self.moves.rotations()
        ]
        others = [name for name in self.moves.names() if name not in self.moves.rotations()]
        if others:
            rules.append({"if": when(others), "then": {"not": {"required": [self.degrees_param]}}})
        return rules

    def request_errors(self, data: Mapping[str, Any], original: Mapping[str, Any]) -> dict[str, list[str]]:
        move = data.get(self.name)
        # An invalid move or degrees value already has its own error; judging the pair would add noise.
        if move is None or (self.degrees_param in original and self.degrees_param not in data):
            return {}
        problem = self.moves.degrees_problem(move, data.get(self.degrees_param))
        return {self.degrees_param: [problem]} if problem else {}

    def bindings(self, value: Any, values: Mapping[str, Any], images: Sequence[str]) -> list[tuple[Target, Any]]:
        degrees = values.get(self.degrees_param, ABSENT)
        try:
            phrase = self.moves.phrase(value, None if degrees is ABSENT else degrees)
        except KeyError:
            raise BindError(f"{self.name}: unknown camera move {value!r}") from None
        except ValueError as exc:
            raise BindError(f"{self.degrees_param}: {exc}") from None
        return [(target, phrase) for target in self.targets]

    def consumes(self) -> tuple[str, ...]:
        return (self.degrees_param,)

    def companion_problem(self, companion: Param) -> str | None:
        if not isinstance(companion, IntegerParam):
            return "a rotation's degrees must be an integer parameter"
        allowed = self.moves.all_degrees()
        # Its own choices are what the request schema documents; they must match the table.
        if companion.choices and sorted(companion.choices) != allowed:
            return f"choices {list(companion.choices)} differ from the angles of the moves table {allowed}"
        return None

    def samples(self) -> list[dict[str, Any]]:
        return [
            {self.name: name, self.degrees_param: move.degrees[0]} if move.is_rotation else {self.name: name}
            for name, move in self.moves.moves.items()
        ]
