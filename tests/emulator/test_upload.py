"""POST /upload/image: the `` (1)`` rename rule, overwrite, folders and the live LoadImage list."""

from __future__ import annotations

import requests

from .conftest import DEADLINE_S, png_bytes, shape, upload


def test_rename_rule_matches_trace(emulator, basic_trace):
    first = upload(emulator, "probe_src.png", png_bytes(seed=1), overwrite="true")
    assert first.headers["Content-Type"] == basic_trace["POST /upload/image"]["content_type"]
    assert first.json() == basic_trace["POST /upload/image"]["json"]

    other = upload(emulator, "probe_src.png", png_bytes(seed=2))
    assert other.json() == basic_trace["POST /upload/image (same name, different bytes, no overwrite)"]["json"]

    same = upload(emulator, "probe_src.png", png_bytes(seed=1))
    assert same.json() == basic_trace["POST /upload/image (same name, identical bytes, no overwrite)"]["json"]

    # The second renamed copy's bytes are found again under their own name, and a third variant goes on.
    assert upload(emulator, "probe_src.png", png_bytes(seed=2)).json()["name"] == "probe_src (1).png"
    assert upload(emulator, "probe_src.png", png_bytes(seed=3)).json()["name"] == "probe_src (2).png"


def test_overwrite_replaces_the_bytes(emulator):
    upload(emulator, "a.png", png_bytes(seed=1))
    assert upload(emulator, "a.png", png_bytes(seed=2), overwrite="1").json()["name"] == "a.png"
    view = requests.get(f"{emulator.url}/view", params={"filename": "a.png", "type": "input"}, timeout=DEADLINE_S)
    assert view.content == png_bytes(seed=2)


def test_subfolder_and_type(emulator):
    response = upload(emulator, "b.png", png_bytes(), subfolder="jobs/1", type="temp")
    assert response.json() == {"name": "b.png", "subfolder": "jobs/1", "type": "temp"}
    assert shape(response.json()) == {"name": "str", "subfolder": "str", "type": "str"}
    params = {"filename": "b.png", "subfolder": "jobs/1", "type": "temp"}
    assert requests.get(f"{emulator.url}/view", params=params, timeout=DEADLINE_S).content == png_bytes()


def test_upload_outside_the_folder_is_refused(emulator):
    assert upload(emulator, "c.png", png_bytes(), subfolder="../../escape").status_code == 400


def test_load_image_lists_uploaded_files(emulator):
    for name in ("z.png", "a.png"):
        upload(emulator, name, png_bytes())
    (emulator.emulator.config.input_dir / "notes.txt").write_text("not an image")
    info = requests.get(f"{emulator.url}/object_info/LoadImage", timeout=DEADLINE_S).json()
    assert info["LoadImage"]["input"]["required"]["image"] == [["a.png", "z.png"], {"image_upload": True}]
