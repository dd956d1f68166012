"""What the model sync verified: each file's sha256 by its size, mtime and inode, so a boot does not rehash 31 GB."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from gpuorch.modelsync.plan import Found, Verified

__all__ = ["CACHE_FILE", "VerifiedCache", "found"]

log = logging.getLogger(__name__)

# Beside the model folders it describes; ComfyUI lists only files inside its model folders, never this one.
CACHE_FILE = ".gpuorch-verified.json"


def found(path: Path) -> Found | None:
    """The regular file at `path` as it is now; None when there is none (a link is not a stored file)."""
    try:
        stat = os.lstat(path)
    except FileNotFoundError:
        return None
    if not path.is_file() or path.is_symlink():
        return None
    return Found(stat.st_size, stat.st_mtime_ns, stat.st_ino)


class VerifiedCache:
    """The sha256 of each file the sync hashed, with the file's state then; a file changed since is hashed again."""

    def __init__(self, root: Path):
        self.path = root / CACHE_FILE
        self._entries: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # Losing it costs one rehash of each file, never a wrong answer: start again.
            log.warning("ignoring the verified-files cache %s: %s", self.path, exc)
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, relative: str) -> Verified | None:
        entry = self._entries.get(relative)
        try:
            return Verified(int(entry["size"]), int(entry["mtime_ns"]), int(entry["inode"]), str(entry["sha256"]))
        except (TypeError, KeyError, ValueError):
            return None

    def record(self, relative: str, state: Found, sha256: str) -> None:
        """Remember that the file in `state` holds `sha256`, and save at once: an interrupted sync keeps it."""
        self._entries[relative] = {"size": state.size, "mtime_ns": state.mtime_ns, "inode": state.inode,
                                   "sha256": sha256}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self._entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(partial, self.path)
