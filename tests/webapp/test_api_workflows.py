"""GET /api/v1/workflows[/{name}] and POST /api/v1/workflows/{name}/jobs, over a catalogue with a third workflow."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from gpuorch.celery.app import create_celery_app
from gpuorch.workflows import BUILTIN_WORKFLOWS
from tests.webapp.conftest import keyed
from webapp import create_app
from webapp.request_schemas import request_json_schema

# A copy of camera-angle under another name: a workflow that no named task runs.
EXTRA = "reframe"


@pytest.fixture
def settings(settings, tmp_path):
    """The shared settings, with a workflows folder holding the shipped workflows and EXTRA."""
    root = tmp_path / "workflows"
    shutil.copytree(BUILTIN_WORKFLOWS, root)
    shutil.copytree(root / "camera-angle", root / EXTRA)
    return dataclasses.replace(settings, workflows_dir=str(root))


def image(settings, name: str = "cat.png") -> str:
    return f"s3://{settings.bucket}/inputs/{name}"


def with_images(body: dict, settings) -> dict:
    """The body with each "IMAGE" placeholder replaced by a URI in the test's own (allowed) bucket."""

    def fill(value):
        if isinstance(value, list):
            return [fill(item) for item in value]
        return image(settings) if value == "IMAGE" else value

    return {key: fill(value) for key, value in body.items()}


def test_the_listing_names_every_workflow_with_its_request_schema(client, app):
    answer = client.get("/api/v1/workflows")

    assert answer.status_code == 200
    workflows = app.extensions["gpuorch"].services.workflows
    assert [w["name"] for w in answer.json["workflows"]] == ["camera-angle", "qwen-image-edit", EXTRA]
    for listed in answer.json["workflows"]:
        workflow = workflows.get(listed["name"])
        assert listed == {
            "name": workflow.name,
            "description": workflow.description,
            "submit_url": f"/api/v1/{workflow.name}/jobs",
            "request_schema": request_json_schema(workflow),
        }


def test_the_request_schema_gives_each_parameter_its_type_constraints_default_and_description(client):
    listed = {w["name"]: w["request_schema"] for w in client.get("/api/v1/workflows").json["workflows"]}

    edit = listed["qwen-image-edit"]
    assert edit["required"] == ["prompt", "images"]
    assert edit["properties"]["negative_prompt"]["default"] == ""
    assert (edit["properties"]["images"]["minItems"], edit["properties"]["images"]["maxItems"]) == (1, 3)
    assert edit["properties"]["prompt"]["maxLength"] == 2000
    camera = listed["camera-angle"]
    assert camera["properties"]["degrees"] == {
        "description": camera["properties"]["degrees"]["description"], "type": "integer", "enum": [45, 90],
    }
    assert "rotate_left" in camera["properties"]["move"]["enum"]
    assert all(p["description"] for schema in listed.values() for p in schema["properties"].values())


def test_one_workflow_reads_as_it_is_listed(client):
    listed = {w["name"]: w for w in client.get("/api/v1/workflows").json["workflows"]}

    for name in listed:
        answer = client.get(f"/api/v1/workflows/{name}")
        assert (answer.status_code, answer.json) == (200, listed[name])


def test_an_unknown_workflow_is_404_naming_the_known_ones(client):
    answer = client.get("/api/v1/workflows/sketch")

    assert answer.status_code == 404
    assert answer.json == {"error": {"code": "unknown_workflow", "message": answer.json["error"]["message"]}}
    assert "'sketch'" in answer.json["error"]["message"]
    assert "camera-angle, qwen-image-edit, reframe" in answer.json["error"]["message"]


@pytest.mark.parametrize(
    ("workflow", "body", "task"),
    [
        ("camera-angle", {"image": "IMAGE", "move": "rotate_left", "degrees": 90}, "gpuorch.tasks.camera_angle"),
        ("qwen-image-edit", {"prompt": "make it snow", "images": ["IMAGE"]}, "gpuorch.tasks.qwen_image_edit"),
        (EXTRA, {"image": "IMAGE", "move": "top_down", "seed": 3}, "gpuorch.tasks.run_workflow"),
    ],
)
def test_generic_submission_records_one_job_and_queues_its_task(
    client, settings, provisioned, queues, job_count, workflow, body, task
):
    body = with_images(body, settings)

    answer = client.post(f"/api/v1/workflows/{workflow}/jobs", json=body)

    assert answer.status_code == 202
    job_id = answer.json["job_id"]
    assert answer.headers["Location"] == f"/api/v1/jobs/{job_id}"
    # A price quote comes with it (tests/webapp/test_api_whereabouts.py reads it).
    body = answer.json
    assert body.pop("estimate")["phase"] == "waiting_for_gpu"
    assert body == {
        "job_id": job_id,
        "status": "queued",
        "workflow": workflow,
        "links": {"self": f"/api/v1/jobs/{job_id}"},
    }
    record = provisioned.jobs.get(job_id)
    assert (record.status, record.workflow, record.source) == ("queued", workflow, "api")
    assert job_count() == 1
    # The submission asks the control worker for a GPU check at once (a stopped GPU starts in seconds).
    [check] = queues.receive(settings.control_queue)
    assert check["headers"]["task"] == "gpuorch.lifecycle.check"
    [message] = queues.receive_gpu()
    assert (message["headers"]["id"], message["headers"]["task"]) == (job_id, task)
    expected = {"workflow": workflow, "params": record.params} if task.endswith("run_workflow") else record.params
    assert message["kwargs"] == expected


def test_generic_and_named_routes_accept_the_same_body_alike(client, settings, provisioned):
    body = {"prompt": "  make it snow  ", "images": [image(settings)]}

    named = client.post("/api/v1/qwen-image-edit/jobs", json=body)
    generic = client.post("/api/v1/workflows/qwen-image-edit/jobs", json=body)

    assert (named.status_code, generic.status_code) == (202, 202)
    params = [provisioned.jobs.get(answer.json["job_id"]).params for answer in (named, generic)]
    assert params[0] == params[1] == {"prompt": "make it snow", "negative_prompt": "", "images": body["images"]}


@pytest.mark.parametrize(
    ("workflow", "body", "field"),
    [
        ("camera-angle", {"image": "IMAGE", "move": "rotate_left"}, "degrees"),
        ("qwen-image-edit", {"prompt": "x", "images": []}, "images"),
        (EXTRA, {"image": "IMAGE", "move": "somersault"}, "move"),
        (EXTRA, {"image": "ftp://host/a.png", "move": "top_down"}, "image"),
        (EXTRA, {"image": "IMAGE", "move": "top_down", "colour": "red"}, "colour"),
    ],
)
def test_bad_params_are_422_and_leave_nothing(client, settings, queues, job_count, workflow, body, field):
    body = with_images(body, settings)

    answer = client.post(f"/api/v1/workflows/{workflow}/jobs", json=body)

    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "invalid_params"
    assert field in answer.json["error"]["fields"]
    assert (queues.total(), job_count()) == (0, 0)


@pytest.mark.parametrize(
    ("workflow", "data", "status", "code"),
    [
        pytest.param("camera-angle", "{not json", 400, "invalid_json", id="malformed JSON"),
        pytest.param("camera-angle", "[]", 400, "invalid_body", id="array body"),
        pytest.param("sketch", '{"image": "x"}', 404, "unknown_workflow", id="unknown workflow"),
        pytest.param("sketch", "{not json", 404, "unknown_workflow", id="unknown workflow before the body"),
    ],
)
def test_refused_requests_leave_nothing(client, queues, job_count, workflow, data, status, code):
    answer = client.post(f"/api/v1/workflows/{workflow}/jobs", data=data, content_type="application/json")

    assert answer.status_code == status
    assert answer.json["error"]["code"] == code
    assert (queues.total(), job_count()) == (0, 0)


def test_a_store_that_refuses_the_record_is_503_and_nothing_is_queued(api_key, provisioned, settings, queues):
    broken = dataclasses.replace(settings, job_table=f"{settings.job_table}_missing")
    celery_app = create_celery_app(broken)
    client = keyed(create_app(broken, celery_app=celery_app).test_client(), api_key)

    answer = client.post(f"/api/v1/workflows/{EXTRA}/jobs", json={"image": image(settings), "move": "close_up"})

    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "unavailable"
    assert queues.total() == 0
    celery_app.close()


def test_openapi_documents_the_generic_body_as_the_named_workflows_schema(client):
    document = client.get("/openapi.json").json

    operation = document["paths"]["/api/v1/workflows/{name}/jobs"]["post"]
    components = ["CameraAngleRequest", "QwenImageEditRequest", "ReframeRequest"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "anyOf": [{"$ref": f"#/components/schemas/{c}"} for c in components]
    }
    assert set(components) <= set(document["components"]["schemas"])
    [name] = document["paths"]["/api/v1/workflows/{name}/jobs"]["parameters"]
    assert (name["in"], name["required"], name["schema"]["enum"]) == (
        "path", True, ["camera-angle", "qwen-image-edit", EXTRA],
    )
    assert "Location" in operation["responses"]["202"]["headers"]
    assert {"400", "404", "422", "503"} <= set(operation["responses"])
    listing = document["paths"]["/api/v1/workflows"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/WorkflowList"}
    one = document["paths"]["/api/v1/workflows/{name}"]["get"]["responses"]
    assert one["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Workflow"}
    assert "404" in one
    assert "request_schema" in document["components"]["schemas"]["Workflow"]["required"]


def test_service_info_links_the_workflow_listing(client):
    assert client.get("/").json["links"]["workflows"] == "/api/v1/workflows"
