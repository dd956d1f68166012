"""The model sync against a moto S3 server over HTTP: fetched in parts, verified, put in place, kept, linked."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import requests

from gpuorch.model_files import ModelFiles
from gpuorch.modelsync.cache import CACHE_FILE
from gpuorch.modelsync.check import file_problems
from gpuorch.modelsync.plan import Layout, layout
from gpuorch.modelsync.sync import FAILED, FETCHED, KEPT, VERIFIED, ModelSync, source_opener
from gpuorch.workflows import load_workflows
from gpuorch.workflows.models import model_files
from tests.modelsync.conftest import SMALL_PARTS


class CountingOpener:
    """The real sources, counting how many files the sync had to read from them."""

    def __init__(self, opener):
        self.opener, self.opened = opener, []

    def __call__(self, file):
        self.opened.append(file.path)
        return self.opener(file)


@pytest.fixture
def opener(s3):
    return CountingOpener(source_opener(s3, requests.Session(), mirror=""))


def files_of(workflows_dir: Path, names: ModelFiles = ModelFiles()):
    return model_files(load_workflows(workflows_dir), names)


def sync(where: Layout, opener, **kwargs) -> ModelSync:
    return ModelSync(where, opener, concurrency=4, part_bytes=SMALL_PARTS, **kwargs)


def test_a_first_sync_fetches_every_file_in_parts_and_puts_the_declared_bytes_in_place(
        tmp_path, workflows_dir, stored_models, opener):
    models = tmp_path / "models"

    outcomes = sync(Layout(models, models), opener).run(files_of(workflows_dir))

    assert [o.done for o in outcomes] == [FETCHED] * 5, [str(o) for o in outcomes]
    for stored in stored_models.values():
        assert (models / stored.path).read_bytes() == stored.data
        assert oct((models / stored.path).stat().st_mode & 0o777) == "0o644"
    assert sum(o.fetched_bytes for o in outcomes) == sum(len(s.data) for s in stored_models.values())
    assert not list(models.rglob("*.partial")) and (models / CACHE_FILE).is_file()


def test_the_next_boot_keeps_verified_files_without_reading_the_sources(tmp_path, workflows_dir, opener):
    models = tmp_path / "models"
    files = files_of(workflows_dir)
    sync(Layout(models, models), opener).run(files)
    opener.opened.clear()

    again = sync(Layout(models, models), opener).run(files)

    assert [o.done for o in again] == [KEPT] * 5
    assert opener.opened == []


def test_a_file_touched_since_is_hashed_again_and_kept_when_its_bytes_are_right(
        tmp_path, workflows_dir, stored_models, opener):
    models = tmp_path / "models"
    files = files_of(workflows_dir)
    sync(Layout(models, models), opener).run(files)
    vae = models / stored_models["vae"].path
    os.utime(vae, ns=(1, 1))
    opener.opened.clear()

    outcomes = {o.file.path: o.done for o in sync(Layout(models, models), opener).run(files)}

    assert outcomes[stored_models["vae"].path] == VERIFIED
    assert opener.opened == []


def test_a_file_with_other_bytes_of_the_same_size_is_fetched_again(tmp_path, workflows_dir, stored_models, opener):
    models = tmp_path / "models"
    files = files_of(workflows_dir)
    sync(Layout(models, models), opener).run(files)
    lora = models / stored_models["camera_lora"].path
    lora.write_bytes(bytes(len(stored_models["camera_lora"].data)))  # same size, new mtime: hashed, and wrong

    outcomes = {o.file.path: o.done for o in sync(Layout(models, models), opener).run(files)}

    assert outcomes[stored_models["camera_lora"].path] == FETCHED
    assert lora.read_bytes() == stored_models["camera_lora"].data


def test_files_already_there_before_any_sync_are_verified_once_not_fetched(
        tmp_path, workflows_dir, stored_models, opener):
    models = tmp_path / "models"
    for stored in stored_models.values():  # copied by hand, or by setup-comfyui.sh before the sync existed
        (models / stored.path).parent.mkdir(parents=True, exist_ok=True)
        (models / stored.path).write_bytes(stored.data)

    outcomes = sync(Layout(models, models), opener).run(files_of(workflows_dir))

    assert [o.done for o in outcomes] == [VERIFIED] * 5 and opener.opened == []


def test_a_source_with_other_bytes_is_refused_and_nothing_is_put_in_place(tmp_path, workflows_dir, stored_models,
                                                                         s3, opener):
    vae = stored_models["vae"]
    bucket, key = vae.source.removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(len(vae.data)))  # same size, other bytes
    models = tmp_path / "models"

    outcomes = {o.file.path: o for o in sync(Layout(models, models), opener).run(files_of(workflows_dir))}

    failed = outcomes[vae.path]
    assert failed.done == FAILED
    assert f"holds sha256 {hashlib.sha256(bytes(len(vae.data))).hexdigest()}" in failed.problem
    assert vae.sha256 in failed.problem
    assert not (models / vae.path).exists() and not list(models.rglob("*.partial"))
    assert all(o.ok for path, o in outcomes.items() if path != vae.path)


def test_a_source_of_another_size_is_refused_before_its_bytes_are_fetched(tmp_path, workflows_dir, stored_models,
                                                                         s3, opener):
    vae = stored_models["vae"]
    bucket, key = vae.source.removeprefix("s3://").split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body=b"short")
    models = tmp_path / "models"

    [failed] = [o for o in sync(Layout(models, models), opener).run(files_of(workflows_dir)) if not o.ok]

    assert failed.problem == f"{vae.source} holds 5 bytes; the declaration says {len(vae.data)}"
    assert failed.fetched_bytes == 0


def test_a_missing_source_object_fails_that_file_naming_it(tmp_path, workflows_dir, stored_models, s3, opener):
    vae = stored_models["vae"]
    bucket, key = vae.source.removeprefix("s3://").split("/", 1)
    s3.delete_object(Bucket=bucket, Key=key)
    models = tmp_path / "models"

    [failed] = [o for o in sync(Layout(models, models), opener).run(files_of(workflows_dir)) if not o.ok]

    assert failed.file.path == vae.path and "404" in failed.problem


def test_a_mirror_serves_the_files_under_folder_and_declared_name(tmp_path, workflows_dir, stored_models, s3,
                                                                 model_bucket):
    for stored in stored_models.values():
        s3.put_object(Bucket=model_bucket, Key=f"mirror/v1/{stored.path}", Body=stored.data)
        bucket, key = stored.source.removeprefix("s3://").split("/", 1)
        s3.delete_object(Bucket=bucket, Key=key)  # only the mirror holds them now
    models = tmp_path / "models"
    mirrored = source_opener(s3, requests.Session(), mirror=f"s3://{model_bucket}/mirror/v1/")

    outcomes = sync(Layout(models, models), mirrored).run(files_of(workflows_dir))

    assert [o.done for o in outcomes] == [FETCHED] * 5, [str(o) for o in outcomes]


def test_a_file_renamed_by_its_setting_is_fetched_under_the_new_name(tmp_path, workflows_dir, stored_models, opener):
    models = tmp_path / "models"
    names = ModelFiles(camera_lora="angles.safetensors")

    sync(Layout(models, models), opener).run(files_of(workflows_dir, names))

    assert (models / "loras" / "angles.safetensors").read_bytes() == stored_models["camera_lora"].data
    assert not (models / stored_models["camera_lora"].path).exists()


def test_on_the_instance_store_the_bytes_live_there_and_comfyui_reads_them_through_links(
        tmp_path, workflows_dir, stored_models, opener):
    models, store = tmp_path / "opt" / "models", tmp_path / "mnt" / "instance-store"
    where = layout(str(models), "instance-store", str(store))
    vae = stored_models["vae"]
    (models / vae.path).parent.mkdir(parents=True)
    (models / vae.path).write_bytes(vae.data)  # a copy left on the volume from before

    outcomes = sync(where, opener).run(files_of(workflows_dir))

    assert all(o.ok for o in outcomes)
    for stored in stored_models.values():
        listed = models / stored.path
        assert listed.is_symlink() and Path(os.readlink(listed)) == store / "models" / stored.path
        assert listed.read_bytes() == stored.data
    assert file_problems(files_of(workflows_dir), models) == []


def test_after_a_stop_wiped_the_instance_store_the_check_fails_and_the_next_sync_fetches_again(
        tmp_path, workflows_dir, stored_models, opener):
    models, store = tmp_path / "models", tmp_path / "instance-store"
    where = layout(str(models), "instance-store", str(store))
    files = files_of(workflows_dir)
    sync(where, opener).run(files)
    shutil.rmtree(store)  # what a stop does to the instance store

    problems = file_problems(files, models)
    assert len(problems) == 5 and all("a link to a file that is gone" in p for p in problems)

    assert [o.done for o in sync(where, opener).run(files)] == [FETCHED] * 5
    assert file_problems(files, models) == []

