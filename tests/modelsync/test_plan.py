"""What each declared file needs, from what is on disk and what the last sync verified: a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuorch.modelsync.plan import FETCH, KEEP, VERIFY, Found, Layout, Verified, layout, needs
from gpuorch.workflows.models import ModelFile

SHA = "a" * 64
OTHER = "b" * 64
FILE = ModelFile("loras", "x.safetensors", 100, SHA, "s3://models/x", "x.safetensors", ("camera-angle",))
ON_DISK = Found(size=100, mtime_ns=5, inode=7)


@pytest.mark.parametrize("found,verified,expected", [
    (None, None, FETCH),  # missing
    (None, Verified(100, 5, 7, SHA), FETCH),  # verified once, gone since
    (Found(99, 5, 7), Verified(100, 5, 7, SHA), FETCH),  # the wrong size: an interrupted copy
    (ON_DISK, None, VERIFY),  # there, never verified: hash it once
    (ON_DISK, Verified(100, 5, 7, SHA), KEEP),  # verified, unchanged since: no rehash
    (ON_DISK, Verified(100, 5, 7, OTHER), FETCH),  # verified to hold other bytes
    (ON_DISK, Verified(100, 6, 7, SHA), VERIFY),  # written since it was verified
    (ON_DISK, Verified(100, 5, 8, SHA), VERIFY),  # replaced by another file since
])
def test_what_a_file_needs(found, verified, expected):
    assert needs(FILE, found, verified) == expected


def test_on_the_volume_comfyui_reads_the_stored_files_themselves():
    where = layout("/opt/ComfyUI/models", "volume", "/mnt/instance-store")
    assert where == Layout(Path("/opt/ComfyUI/models"), Path("/opt/ComfyUI/models")) and not where.linked
    assert where.stored(FILE) == where.listed(FILE) == Path("/opt/ComfyUI/models/loras/x.safetensors")


def test_on_the_instance_store_comfyui_reads_links_to_it():
    where = layout("/opt/ComfyUI/models", "instance-store", "/mnt/instance-store")
    assert where.linked
    assert where.stored(FILE) == Path("/mnt/instance-store/models/loras/x.safetensors")
    assert where.listed(FILE) == Path("/opt/ComfyUI/models/loras/x.safetensors")
