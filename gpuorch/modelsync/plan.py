"""Pure decisions of the model sync: where the files live, and what each one needs (keep, verify or fetch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpuorch.workflows.models import ModelFile

__all__ = ["FETCH", "KEEP", "VERIFY", "Found", "Layout", "Verified", "layout", "needs"]

KEEP = "keep"  # the file verified before, unchanged since (same size, mtime and inode): no rehash at boot
VERIFY = "verify"  # the right size, not verified since it last changed: hash it
FETCH = "fetch"  # missing, the wrong size, or verified to hold other bytes


@dataclass(frozen=True)
class Found:
    """A file as it is on disk (os.stat of a regular file)."""

    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class Verified:
    """What the sync found a file to hold the last time it hashed it, and the file's state then."""

    size: int
    mtime_ns: int
    inode: int
    sha256: str

    def describes(self, found: Found) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (found.size, found.mtime_ns, found.inode)


def needs(file: ModelFile, found: Found | None, verified: Verified | None) -> str:
    """What one declared file needs, from what is on disk and what the sync last verified of it."""
    if found is None or found.size != file.bytes:
        return FETCH
    if verified is not None and verified.describes(found):
        return KEEP if verified.sha256 == file.sha256 else FETCH
    return VERIFY


@dataclass(frozen=True)
class Layout:
    """Where the files' bytes live (`store`), and where ComfyUI looks for them (`models_dir`).

    On the volume they are the same folder. On the instance store the bytes live there and `models_dir` holds a
    link to each, so ComfyUI reads the instance store's NVMe and nothing but links is kept on the volume.
    """

    models_dir: Path
    store: Path

    @property
    def linked(self) -> bool:
        return self.store != self.models_dir

    def stored(self, file: ModelFile) -> Path:
        return self.store / file.folder / file.name

    def listed(self, file: ModelFile) -> Path:
        return self.models_dir / file.folder / file.name


def layout(models_dir: str, models_store: str, instance_store_dir: str) -> Layout:
    """The layout the settings ask for (GPUORCH_MODELS_DIR, GPUORCH_MODELS_STORE, GPUORCH_INSTANCE_STORE_DIR)."""
    root = Path(models_dir)
    if models_store == "instance-store":
        return Layout(root, Path(instance_store_dir) / "models")
    return Layout(root, root)
