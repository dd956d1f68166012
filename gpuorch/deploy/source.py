"""The gpuorch source tree `gpuorch deploy` ships to its hosts: where it is, and the release archive made of it."""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from gpuorch import __version__
from gpuorch.errors import ConfigurationError

# The checkout this gpuorch runs from: its configs/ (IAM documents, units, scripts) and Procfile go to the hosts.
CHECKOUT = Path(__file__).resolve().parents[2]
# What never goes to a host, as install-release.sh leaves it out too (build output, caches, local state).
EXCLUDED = (".git", ".venv", ".local-stack", "demo-output", "build", "__pycache__", ".pytest_cache", ".ruff_cache",
            "*.egg-info", "celerybeat-schedule*", "*.pyc")


class NotACheckout(ConfigurationError, RuntimeError):
    """The folder holds no gpuorch source tree (an installed wheel has no configs/ to ship)."""


@dataclass(frozen=True)
class Release:
    """One archive of the source tree; its version names it by content, so the same tree is the same release."""

    version: str
    archive: bytes

    @property
    def key(self) -> str:
        """Where it lies in the release bucket."""
        return f"releases/gpuorch-{self.version}.tar.gz"


def check_checkout(root: Path) -> Path:
    for needed in ("Procfile", "constraints.txt", "configs/deploy/install-release.sh", "configs/deploy/bootstrap.sh"):
        if not (root / needed).is_file():
            raise NotACheckout(f"{root} is not a gpuorch source tree (no {needed}): run gpuorch deploy from a checkout")
    return root


def _excluded(relative: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in EXCLUDED)


def source_files(root: Path) -> list[Path]:
    """The files of the tree, relative to it, in order: git's own list (tracked, and untracked ones it does not
    ignore) in a git checkout, else every file; either way without the excluded ones."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                check=True, capture_output=True).stdout.decode()
        names = [Path(name) for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = [path.relative_to(root) for path in root.rglob("*") if path.is_file() or path.is_symlink()]
    return sorted(name for name in names if not _excluded(name) and (root / name).is_file())


def make_release(root: Path = CHECKOUT) -> Release:
    """A gzip'd tar of the tree, byte for byte the same for the same files (fixed times and owners: root owns
    what a host unpacks, so no login user can change installed code)."""
    root = check_checkout(root)
    tar_bytes = io.BytesIO()
    digest = hashlib.sha256()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in source_files(root):
            data = (root / name).read_bytes()
            executable = (root / name).stat().st_mode & 0o111
            info = tarfile.TarInfo(name.as_posix())
            info.size, info.mtime, info.uid, info.gid = len(data), 0, 0, 0
            info.uname = info.gname = "root"
            info.mode = 0o755 if executable else 0o644
            tar.addfile(info, io.BytesIO(data))
            digest.update(name.as_posix().encode() + b"\0" + str(info.mode).encode() + b"\0" + data)
    archive = gzip.compress(tar_bytes.getvalue(), mtime=0)
    return Release(f"{__version__}-{digest.hexdigest()[:12]}", archive)
