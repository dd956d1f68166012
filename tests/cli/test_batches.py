"""`gpuorch batch submit|status|cancel` against a real API served on loopback over the moto server: a folder of
images as one batch."""

from __future__ import annotations

import json

from gpuorch.jobs import states
from tests.webapp.images import encode


def folder_of(tmp_path, count: int):
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(count):
        (folder / f"photo-{n}.png").write_bytes(encode("PNG"))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_a_folder_is_submitted_as_one_batch_each_image_a_job(gpuorch, served, tmp_path):
    api_settings, _, services = served
    result = gpuorch("batch", "submit", "camera-angle", str(folder_of(tmp_path, 3)), "-p", "move=top_down",
                     "--priority", "low", "--format", "webp", settings=api_settings)

    assert result.exit_code == 0, result.output
    batch = services.batches.get(result.stdout.strip())
    jobs = [services.jobs.get(job_id) for job_id in batch.job_ids]
    assert len(jobs) == 3
    for job in jobs:
        assert job.params["move"] == "top_down" and job.params["image"].endswith(f"/inputs/{job.job_id}/image.png")
        assert (job.priority, job.output["format"], job.batch_id) == ("low", "webp", batch.batch_id)

    shown = gpuorch("batch", "status", batch.batch_id, settings=api_settings)
    assert shown.exit_code == 0 and shown.stdout.startswith(f"batch {batch.batch_id}: 3 item(s): 3 queued")
    assert json.loads(gpuorch("batch", "status", batch.batch_id, "--json", settings=api_settings).stdout)["total"] == 3

    cancelled = gpuorch("batch", "cancel", batch.batch_id, settings=api_settings)
    assert cancelled.exit_code == 0 and "3 cancelled" in cancelled.stdout
    assert {services.jobs.get(j).status for j in batch.job_ids} == {states.CANCELLED}


def test_a_refused_batch_names_each_item_and_exits_1(gpuorch, served, tmp_path):
    api_settings, _, _ = served
    result = gpuorch("batch", "submit", "camera-angle", str(folder_of(tmp_path, 2)), "-p", "move=somersault",
                     settings=api_settings)
    assert result.exit_code == 1
    assert "  items.0.move: " in result.stderr and "  items.1.move: " in result.stderr


def test_an_empty_folder_or_unknown_batch_is_said(gpuorch, served, tmp_path):
    api_settings, _, _ = served
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gpuorch("batch", "submit", "camera-angle", str(empty), settings=api_settings).exit_code == 2
    missing = gpuorch("batch", "status", "no-such-batch", settings=api_settings)
    assert missing.exit_code == 1 and "batch_not_found" in missing.stderr
