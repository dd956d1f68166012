"""Shared pieces of parameter declarations: binding targets, the ABSENT marker, typed params.json reads."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ABSENT", "NAME_PATTERN", "SpecReader", "Target"]


class _Absent:
    """Marks a parameter that the request left out and that has no default."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Target:
    """One place a value is written: an input of a node in the template graph."""

    node: str
    input: str

    def __str__(self) -> str:
        return f"node {self.node} input {self.input!r}"


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KINDS: Mapping[str, Callable[[Any], bool]] = {
    "a string": lambda v: isinstance(v, str),
    "a non-empty string": lambda v: isinstance(v, str) and bool(v.strip()),
    "a parameter name (lower_case)": lambda v: isinstance(v, str) and bool(NAME_PATTERN.fullmatch(v)),
    "a boolean": lambda v: isinstance(v, bool),
    "an integer": _is_int,
    "a non-negative integer": lambda v: _is_int(v) and v >= 0,
    "a positive integer": lambda v: _is_int(v) and v > 0,
    "a number": _is_number,
    "a non-empty list of strings": lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v),
    "a non-empty list of integers": lambda v: isinstance(v, list) and bool(v) and all(_is_int(x) for x in v),
    "a non-empty list of numbers": lambda v: isinstance(v, list) and bool(v) and all(_is_number(x) for x in v),
    "a list of node ids": lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v),
    "a non-empty list": lambda v: isinstance(v, list) and bool(v),
}

_REQUIRED = object()


class SpecReader:
    """Typed reads of one params.json entry; every problem is a ValueError naming the entry and key."""

    def __init__(self, data: Mapping[str, Any], where: str):
        self.data = data
        self.where = where
        self._used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.data

    def take(self, key: str, kind: str, default: Any = _REQUIRED) -> Any:
        """The value of ``key``, which must be ``kind`` (a key of the table above); ``default`` if absent."""
        self._used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise self.problem(f"missing {key!r}")
            return default
        value = self.data[key]
        if not _KINDS[kind](value):
            raise self.problem(f"{key!r} must be {kind}, not {value!r}")
        return value

    def targets(self, key: str = "bind") -> tuple[Target, ...]:
        """A non-empty list of ``{"node": id, "input": name}`` objects."""
        targets = []
        for entry in self.take(key, "a non-empty list"):
            if not (
                isinstance(entry, dict)
                and set(entry) == {"node", "input"}
                and all(isinstance(entry[k], str) and entry[k] for k in ("node", "input"))
            ):
                raise self.problem(f'{key!r} entries must be {{"node": "<id>", "input": "<name>"}}, not {entry!r}')
            targets.append(Target(entry["node"], entry["input"]))
        return tuple(targets)

    def problem(self, message: str) -> ValueError:
        return ValueError(f"{self.where}: {message}")

    def finish(self) -> None:
        """Refuse keys nobody read: a misspelt key must not silently fall back to a default."""
        extra = sorted(set(self.data) - self._used)
        if extra:
            raise self.problem(f"unknown key(s) {', '.join(map(repr, extra))}")
