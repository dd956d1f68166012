"""Reading the Procfile: the one list of gpuorch's processes, used by deployments and the local stack."""

from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+):\s*(?P<command>.+)$")


class ProcfileError(ValueError):
    """A Procfile line that is neither a process, a comment nor blank."""


def parse_procfile(text: str) -> dict[str, str]:
    """Process name -> shell command, in file order; comments and blank lines skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(stripped)
        if match is None:
            raise ProcfileError(f"Procfile line {number}: expected 'name: command', got {line!r}")
        if match["name"] in processes:
            raise ProcfileError(f"Procfile line {number}: process {match['name']!r} is defined twice")
        processes[match["name"]] = match["command"].strip()
    return processes


def load_procfile(path: Path) -> dict[str, str]:
    return parse_procfile(path.read_text(encoding="utf-8"))
