"""The GPU worker's check of the declared model files before it takes a job: each present, of its declared size."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gpuorch.workflows.models import ModelFile

__all__ = ["file_problems"]


def file_problems(files: Iterable[ModelFile], models_dir: Path) -> list[str]:
    """Why each declared file cannot be loaded from `models_dir` as declared (empty: every one can).

    Sizes only: `gpuorch models sync` verified the bytes before putting each file in place, and hashing 31 GB at
    every start would cost minutes of a paid GPU.
    """
    problems = []
    for file in files:
        path = models_dir / file.folder / file.name
        users = ", ".join(file.workflows)
        try:
            size = os.stat(path).st_size  # through the link to the instance store, if it is one
        except FileNotFoundError:
            dangling = " (a link to a file that is gone: the instance store is wiped at every stop)" \
                if path.is_symlink() else ""
            problems.append(f"model file {path} is missing{dangling} (loaded by {users}): `gpuorch models sync` "
                            f"fetches it")
            continue
        except OSError as exc:
            problems.append(f"model file {path} cannot be read: {exc}")
            continue
        if size != file.bytes:
            problems.append(f"model file {path} has {size} bytes, not the declared {file.bytes} (an interrupted "
                            f"copy, or another file under this name; loaded by {users}): `gpuorch models sync` "
                            f"replaces it")
    return problems
