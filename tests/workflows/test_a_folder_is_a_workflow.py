"""A workflow folder is all a new workflow needs: its graph, parameters and model files, with a role and a ComfyUI
folder of their own, reach the template check, `gpuorch models list` and `workflows check`, the REST routes (its own
and the generic one), run_workflow.delay() and the document, with no code or setting written for it."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from click.testing import CliRunner

from gpuorch.celery.app import create_celery_app
from gpuorch.cli.main import main
from gpuorch.model_files import ModelFiles
from gpuorch.settings import settings_env
from gpuorch.tasks import run_workflow, use_app
from gpuorch.workflows import check_workflow, load_workflows
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from gpuorch.workflows.models import comfyui_folders, model_files
from tests.conftest import make_key
from tests.paths import CATALOGUE, UPSCALE_WORKFLOW
from tests.webapp.conftest import QueueReader, keyed
from webapp import create_app

UPSCALER = "upscale_models/gpuorch-test-upscaler-x2.pth"


@pytest.fixture
def workflows_dir(tmp_path):
    """The built-in workflows and the upscale folder beside them: what a deployment's GPUORCH_WORKFLOWS_DIR holds."""
    root = tmp_path / "workflows"
    shutil.copytree(BUILTIN_WORKFLOWS, root)
    shutil.copytree(UPSCALE_WORKFLOW, root / "upscale")
    return root


def test_its_model_file_is_declared_by_its_folder_and_bound_by_role(workflows_dir):
    workflows = load_workflows(workflows_dir)
    upscale = workflows["upscale"]

    assert [m.role for m in upscale.models] == ["upscaler"]
    assert UPSCALER in [f.path for f in model_files(workflows, ModelFiles())]
    assert comfyui_folders(workflows, ModelFiles())["upscale_models"] == ["gpuorch-test-upscaler-x2.pth"]
    catalogue = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    assert check_workflow(upscale, catalogue, ModelFiles(), models_known=False) == []
    # A live server without its file is told so, by the folder's own declaration.
    assert check_workflow(upscale, catalogue, ModelFiles(), models_known=True)[0] == (
        "upscale: the server has no upscale_models file 'gpuorch-test-upscaler-x2.pth' "
        "(upscaler, loaded by node 2 UpscaleModelLoader.model_name)")


def test_the_commands_read_it_from_the_folder(settings, workflows_dir):
    env = settings_env(dataclasses.replace(settings, workflows_dir=str(workflows_dir)))
    checked = CliRunner().invoke(main, ["workflows", "check", "--catalogue", str(CATALOGUE)], env=env)
    listed = CliRunner().invoke(main, ["models", "list", "--json"], env=env)

    assert checked.exit_code == 0, checked.output
    assert "ok upscale" in checked.output.splitlines()
    files = {f["path"]: f for f in json.loads(listed.stdout)["files"]}
    assert files[UPSCALER]["workflows"] == ["upscale"]


def test_the_api_and_delay_serve_it(settings, provisioned, workflows_dir):
    settings = dataclasses.replace(settings, workflows_dir=str(workflows_dir), rate_limit_per_minute=0,
                                   max_backlog=0)
    celery_app = create_celery_app(settings)
    try:
        client = keyed(create_app(settings, celery_app=celery_app).test_client(), make_key(provisioned))
        image = f"s3://{settings.bucket}/inputs/house.png"
        own = client.post("/api/v1/upscale/jobs", json={"image": image})
        generic = client.post("/api/v1/workflows/upscale/jobs", json={"image": image, "output": {"format": "jpeg"}})
        listed = client.get("/api/v1/workflows").json["workflows"]
        document = client.get("/openapi.json").json
        use_app(celery_app)
        delayed = run_workflow.delay(workflow="upscale", params={"image": image})
    finally:
        use_app(None)
        celery_app.close()

    assert (own.status_code, generic.status_code) == (202, 202), (own.json, generic.json)
    assert "upscale" in [w["name"] for w in listed]
    assert "/api/v1/upscale/jobs" in document["paths"]
    messages = {m["headers"]["id"]: m for m in QueueReader(provisioned, settings).receive_gpu()}
    assert set(messages) == {own.json["job_id"], generic.json["job_id"], delayed.id}
    # A workflow without a task of its own runs as run_workflow, its message naming it.
    assert {m["headers"]["task"] for m in messages.values()} == {"gpuorch.tasks.run_workflow"}
    assert messages[delayed.id]["kwargs"] == {"workflow": "upscale", "params": {"image": image}}
