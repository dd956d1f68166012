"""Table-driven tests of the emulator's pure rules: file naming, sizes, graph order and cache signatures."""

from __future__ import annotations

import time

import pytest
from PIL import Image

from gpuorch_dev.emulator import images as ops
from gpuorch_dev.emulator.graph import DependencyCycle, execution_order, needed_nodes, signatures
from gpuorch_dev.emulator.storage import (
    PathOutsideFolder,
    Storage,
    expand_prefix,
    next_save_counter,
    split_annotation,
    upload_candidates,
)


@pytest.mark.parametrize(
    ("existing", "base", "expected"),
    [
        ([], "probe", 1),
        (["probe_00001_.png"], "probe", 2),
        (["probe_00001_.png", "probe_00007_.png", "probe_00003_.png"], "probe", 8),
        (["probe_err_00005_.png"], "probe", 1),
        (["probe_x_.png"], "probe", 1),
        (["other_00009_.png", "probe_00002_.png"], "probe", 3),
    ],
)
def test_next_save_counter(existing, base, expected):
    assert next_save_counter(existing, base) == expected


def test_upload_candidates():
    candidates = upload_candidates("x.png")
    assert [next(candidates) for _ in range(3)] == ["x.png", "x (1).png", "x (2).png"]
    assert next(upload_candidates("noext")) == "noext"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", ("a.png", None)),
        ("a.png [output]", ("a.png", "output")),
        ("sub/a.png [temp]", ("sub/a.png", "temp")),
        ("a.png [input]", ("a.png", "input")),
        ("a.png[output]", ("a.png[output]", None)),
    ],
)
def test_split_annotation(name, expected):
    assert split_annotation(name) == expected


def test_expand_prefix():
    now = time.struct_time((2026, 3, 4, 5, 6, 7, 0, 63, 0))
    assert expand_prefix("plain", 1, 2, now) == "plain"
    assert expand_prefix("%year%-%month%-%day%/img_%width%x%height%", 640, 480, now) == "2026-03-04/img_640x480"


def test_storage_keeps_paths_inside(tmp_path):
    storage = Storage(tmp_path)
    storage.prepare()
    assert storage.inside("output", "a", "b.png") == tmp_path.resolve() / "output" / "a" / "b.png"
    with pytest.raises(PathOutsideFolder):
        storage.inside("input", "..", "output", "x.png")
    assert storage.exists_annotated("../../etc/passwd") is False


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    [
        (ops.scale_to_size, (64, 48, 0, 0), (64, 48)),
        (ops.scale_to_size, (64, 48, 32, 0), (32, 24)),
        (ops.scale_to_size, (64, 48, 0, 96), (128, 96)),
        (ops.scale_to_size, (64, 48, 10, 10), (10, 10)),
        (ops.scale_by_size, (64, 48, 0.5), (32, 24)),
        (ops.scale_by_size, (5, 3, 1.5), (8, 4)),
        (ops.total_pixels_size, (1024, 1024, 1.0, 1), (1024, 1024)),
        (ops.total_pixels_size, (2048, 1024, 1.0, 8), (1448, 728)),
        (ops.max_dimension_size, (200, 100, 50), (50, 25)),
        (ops.max_dimension_size, (100, 200, 50), (25, 50)),
        (ops.kontext_size, (1000, 1000), (1024, 1024)),
        (ops.kontext_size, (1600, 900), (1392, 752)),
        (ops.center_crop_box, (200, 100, 100, 100), (50, 0, 150, 100)),
        (ops.center_crop_box, (100, 200, 100, 100), (0, 50, 100, 150)),
        (ops.center_crop_box, (100, 100, 50, 50), (0, 0, 100, 100)),
    ],
)
def test_size_rules(function, args, expected):
    assert function(*args) == expected


def test_render_stand_in_is_deterministic_and_keyed():
    base = Image.new("RGB", (40, 30), (10, 200, 30))
    first = ops.render_stand_in(base, (40, 30), "seed=1", 1.0)
    assert first.tobytes() == ops.render_stand_in(base, (40, 30), "seed=1", 1.0).tobytes()
    assert first.tobytes() != ops.render_stand_in(base, (40, 30), "seed=2", 1.0).tobytes()
    assert ops.render_stand_in(base, (40, 30), "seed=1", 0.0).tobytes() == base.tobytes()


def test_mark_emulated_frames_even_tiny_images():
    marked = ops.mark_emulated(Image.new("RGB", (8, 8), (0, 0, 0)))
    assert marked.getpixel((0, 0)) == ops._MARK_COLOUR and marked.getpixel((4, 4)) == (0, 0, 0)


def _node(cls: str, **inputs) -> dict:
    return {"class_type": cls, "inputs": inputs}


DIAMOND = {
    "1": _node("LoadImage", image="a.png"),
    "2": _node("ImageInvert", image=["1", 0]),
    "3": _node("ImageFlip", image=["1", 0], flip_method="x-axis: vertically"),
    "4": _node("ImageBatch", image1=["2", 0], image2=["3", 0]),
    "5": _node("SaveImage", images=["4", 0], filename_prefix="d"),
    "6": _node("SaveImage", images=["1", 0], filename_prefix="unused"),
}


@pytest.mark.parametrize(
    ("outputs", "skip", "expected"),
    [
        (["5"], set(), ["1", "2", "3", "4", "5"]),
        (["5"], {"2"}, ["1", "3", "4", "5"]),
        (["5"], {"4"}, ["5"]),
        (["6", "5"], set(), ["1", "6", "2", "3", "4", "5"]),
    ],
)
def test_execution_order(outputs, skip, expected):
    assert execution_order(DIAMOND, outputs, skip) == expected


def test_needed_nodes_skips_unreachable():
    assert needed_nodes(DIAMOND, ["6"]) == ["1", "6"]


def test_cycles_are_detected():
    cyclic = {
        "1": _node("ImageInvert", image=["2", 0]),
        "2": _node("ImageInvert", image=["1", 0]),
        "3": _node("SaveImage", images=["2", 0], filename_prefix="c"),
    }
    with pytest.raises(DependencyCycle):
        execution_order(cyclic, ["3"], set())
    with pytest.raises(DependencyCycle):
        signatures(cyclic, ["3"], lambda cls, inputs: "")


def test_signatures_follow_upstream_changes():
    def digest(file_bytes: str):
        return lambda cls, inputs: file_bytes if cls == "LoadImage" else ""

    base = signatures(DIAMOND, list(DIAMOND), digest("v1"))
    changed_file = signatures(DIAMOND, list(DIAMOND), digest("v2"))
    assert all(base[n] != changed_file[n] for n in DIAMOND)
    renamed = {**DIAMOND, "6": _node("SaveImage", images=["1", 0], filename_prefix="other")}
    after_rename = signatures(renamed, list(renamed), digest("v1"))
    assert [n for n in DIAMOND if after_rename[n] != base[n]] == ["6"]
