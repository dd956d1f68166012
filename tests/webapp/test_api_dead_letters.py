"""GET /api/v1/dead-letters and POST /api/v1/dead-letters/redrive, over the moto server."""

from __future__ import annotations

from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch.jobs.deadletters import read_dead_letter
from gpuorch.jobs.redrive import redrive_job_id

PARAMS = {"image": "s3://gpuorch-jobs/inputs/house.png", "move": "close_up"}


def dead_lettered(provisioned, settings, job_id: str) -> None:
    provisioned.jobs.create(job_id, "camera-angle", PARAMS, source="api", owner="alice")
    provisioned.jobs.transition(job_id, states.FAILED, error="reached the dead-letter queue")
    create_celery_app(settings).send_task(
        "gpuorch.tasks.camera_angle", kwargs=PARAMS, task_id=job_id, queue=settings.gpu_dead_letter_queue)


def test_the_routes_need_an_operator_key(client):
    assert client.get("/api/v1/dead-letters").status_code == 403
    assert client.post("/api/v1/dead-letters/redrive", json={"all": True}).status_code == 403


def test_list_then_redrive_then_the_jobs_are_linked(operator, client, provisioned, settings):
    dead_lettered(provisioned, settings, "dead")
    provisioned.aws.sqs.send_message(QueueUrl=provisioned.aws.queue_url(settings.gpu_dead_letter_queue),
                                     MessageBody="garbage")

    listed = operator.get("/api/v1/dead-letters")
    assert listed.status_code == 200, listed.json
    rows = {row["job_id"]: row for row in listed.json["dead_letters"]}
    dead = rows["dead"]
    assert (dead["fixable"], dead["job_status"], dead["workflow"]) == (True, "failed", "camera-angle")
    assert rows[None]["fixable"] is False and rows[None]["unfixable"].startswith("not a Celery task message")

    dry = operator.post("/api/v1/dead-letters/redrive", json={"all": True, "dry_run": True})
    assert sorted(o["action"] for o in dry.json["outcomes"]) == ["left", "would-redrive"]
    assert provisioned.jobs.get(redrive_job_id("dead")) is None

    answer = operator.post("/api/v1/dead-letters/redrive", json={"ids": ["dead"]})
    assert answer.status_code == 200, answer.json
    new_id = redrive_job_id("dead")
    assert [(o["action"], o["new_job_id"]) for o in answer.json["outcomes"]] == [("redriven", new_id)]
    assert client.get("/api/v1/jobs/dead").json["redriven_as"] == new_id
    # The new job is the old one's owner's: alice's key follows it.
    new = client.get(f"/api/v1/jobs/{new_id}").json
    assert (new["status"], new["redrive_of"], new["params"]) == ("queued", "dead", PARAMS)
    assert provisioned.jobs.get(new_id).owner == "alice"
    gpu = provisioned.aws.queue_url(settings.gpu_queue)
    [message] = provisioned.aws.sqs.receive_message(QueueUrl=gpu, MaxNumberOfMessages=10).get("Messages", [])
    assert read_dead_letter(message).job_id == new_id
    assert [row["job_id"] for row in operator.get("/api/v1/dead-letters").json["dead_letters"]] == [None]


def test_a_redrive_must_name_its_messages_or_ask_for_all(operator, provisioned):
    for body in ({}, {"ids": ["a"], "all": True}, {"ids": "a"}, {"all": True, "force": True}):
        answer = operator.post("/api/v1/dead-letters/redrive", json=body)
        assert answer.status_code == 422, (body, answer.json)
        assert answer.json["error"]["code"] == "invalid_params"


def test_the_routes_are_in_the_openapi_document(client):
    document = client.get("/openapi.json").json
    assert {"/api/v1/dead-letters", "/api/v1/dead-letters/redrive"} <= set(document["paths"])
    assert {"redrive_of", "redriven_as"} <= set(document["components"]["schemas"]["Job"]["properties"])
