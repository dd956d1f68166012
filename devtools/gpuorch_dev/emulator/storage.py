"""The emulator's input, output and temp folders, with ComfyUI's naming and path-safety rules."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FOLDER_TYPES = ("input", "output", "temp")

# ComfyUI's "name.png [output]" convention for naming a file in another folder than the default one.
_ANNOTATIONS = {" [output]": "output", " [input]": "input", " [temp]": "temp"}


@dataclass(frozen=True)
class SaveTarget:
    """Where an image-saving node writes: ``folder / f"{base}_{counter:05}_.png"``, reported with ``subfolder``."""

    folder: Path
    base: str
    counter: int
    subfolder: str


class PathOutsideFolder(Exception):
    """A client-supplied name or subfolder points outside the folder it belongs to."""


class Storage:
    """The three folders ComfyUI serves files from; every path a client names is checked to stay inside."""

    def __init__(self, data_dir: Path):
        root = Path(data_dir).resolve()
        self._dirs = {kind: root / kind for kind in FOLDER_TYPES}

    def prepare(self) -> None:
        """Create the folders; empty the temp folder, as ComfyUI does at start."""
        shutil.rmtree(self._dirs["temp"], ignore_errors=True)
        for folder in self._dirs.values():
            folder.mkdir(parents=True, exist_ok=True)

    def directory(self, kind: str) -> Path | None:
        return self._dirs.get(kind)

    def inside(self, kind: str, *parts: str) -> Path:
        """``kind``'s folder joined with ``parts``; raises PathOutsideFolder when that escapes the folder."""
        base = self._dirs[kind]
        path = Path(os.path.abspath(os.path.join(base, *parts)))
        if os.path.commonpath((base, path)) != str(base):
            raise PathOutsideFolder(f"{os.path.join(*parts) if parts else ''} is outside the {kind} folder")
        return path

    def annotated_path(self, name: str, default_kind: str = "input") -> Path:
        """The file a loader's ``name`` (optionally ``"x.png [output]"``) refers to."""
        plain, kind = split_annotation(name)
        return self.inside(kind or default_kind, plain)

    def exists_annotated(self, name: str) -> bool:
        try:
            return self.annotated_path(name).exists()
        except PathOutsideFolder:
            return False

    def input_images(self) -> list[str]:
        """Image files directly in the input folder: what LoadImage lists."""
        folder = self._dirs["input"]
        return (
            sorted(entry.name for entry in folder.iterdir() if entry.is_file() and is_image_name(entry.name))
            if folder.is_dir()
            else []
        )

    def store_upload(self, kind: str, subfolder: str, filename: str, data: bytes, overwrite: bool) -> str:
        """Write an uploaded file and return the name it got (ComfyUI's `` (1)`` rule unless ``overwrite``).

        A file of the same name and identical bytes is reused rather than duplicated.
        """
        folder = self.inside(kind, os.path.normpath(subfolder))
        target = self.inside(kind, os.path.normpath(subfolder), filename)
        folder.mkdir(parents=True, exist_ok=True)
        if not overwrite:
            digest = hashlib.sha256(data).digest()
            for candidate in upload_candidates(filename):
                target = folder / candidate
                if not target.exists():
                    break
                if _file_digest(target) == digest:
                    return candidate
        target.write_bytes(data)
        return target.name

    def save_target(self, kind: str, filename_prefix: str, width: int, height: int) -> SaveTarget:
        """Where the next image for ``filename_prefix`` goes, numbered after the files already there."""
        prefix = expand_prefix(filename_prefix, width, height, time.localtime())
        normalized = os.path.normpath(prefix)
        subfolder, base = os.path.dirname(normalized), os.path.basename(normalized)
        folder = self.inside(kind, subfolder)
        folder.mkdir(parents=True, exist_ok=True)
        return SaveTarget(folder, base, next_save_counter(os.listdir(folder), base), subfolder)


def split_annotation(name: str) -> tuple[str, str | None]:
    """``"x.png [output]"`` -> ``("x.png", "output")``; an unannotated name gives ``(name, None)``."""
    for suffix, kind in _ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def upload_candidates(filename: str) -> Iterator[str]:
    """``x.png``, ``x (1).png``, ``x (2).png``, ...: the names an upload tries in turn."""
    stem, ext = os.path.splitext(filename)
    yield filename
    index = 1
    while True:
        yield f"{stem} ({index}){ext}"
        index += 1


def next_save_counter(existing: Iterable[str], base: str) -> int:
    """One past the highest ``<base>_NNNNN_...`` counter among ``existing`` names (1 when none)."""
    highest = 0
    for name in existing:
        head, tail = name[: len(base) + 1], name[len(base) + 1 :]
        if os.path.normcase(head[:-1]) != os.path.normcase(base) or head[-1:] != "_":
            continue
        digits = tail.split("_")[0]
        highest = max(highest, int(digits) if digits.isdigit() else 0)
    return highest + 1


def expand_prefix(prefix: str, width: int, height: int, now: time.struct_time) -> str:
    """Substitute ComfyUI's ``%width%``, ``%height%``, ``%year%`` ... variables in a filename prefix."""
    if "%" not in prefix:
        return prefix
    values = {
        "width": str(width),
        "height": str(height),
        "year": str(now.tm_year),
        "month": f"{now.tm_mon:02}",
        "day": f"{now.tm_mday:02}",
        "hour": f"{now.tm_hour:02}",
        "minute": f"{now.tm_min:02}",
        "second": f"{now.tm_sec:02}",
    }
    for key, value in values.items():
        prefix = prefix.replace(f"%{key}%", value)
    return prefix


def is_image_name(name: str) -> bool:
    kind, _ = mimetypes.guess_type(name)
    return bool(kind and kind.startswith("image/"))


def _file_digest(path: Path) -> bytes:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()
