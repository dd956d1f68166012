"""Webhooks through the API: a submission names one (or its key's default applies), the record says where its events
go, its deliveries are listed to its owner and resent on request; a bad webhook is a 422 naming its field."""

from __future__ import annotations

import pytest

from gpuorch.access.keys import KeyStore
from gpuorch.jobs import states
from gpuorch.webhooks.secrets import SecretStore, new_secret
from tests.conftest import make_key
from tests.webapp.conftest import keyed
from tests.webhooks.receiver import Receiver


def image(settings) -> str:
    return f"s3://{settings.bucket}/inputs/cat.png"


@pytest.fixture
def receiver(provisioned, settings):
    secret = new_secret()
    running = Receiver(secret)
    running.secret_store = SecretStore(provisioned.aws.dynamodb, settings.control_table)
    yield running
    running.close()


def test_a_submission_names_its_webhook_and_the_record_shows_it(client, settings, provisioned):
    answer = client.post("/api/v1/camera-angle/jobs", json={
        "image": image(settings), "move": "top_down", "webhook": "http://127.0.0.1:9/hook",
        "webhook_events": ["job.succeeded", "job.progress"]})
    assert answer.status_code == 202, answer.json
    record = client.get(f"/api/v1/jobs/{answer.json['job_id']}").json
    assert record["webhook"] == {"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded", "job.progress"]}
    assert record["params"] == {"image": image(settings), "move": "top_down"}  # not among the parameters
    stored = provisioned.jobs.get(answer.json["job_id"])
    assert stored.webhook["key_id"] and stored.webhook["key_id"] in client.environ_base["HTTP_AUTHORIZATION"]


@pytest.mark.parametrize("fields,named", [
    ({"webhook": "http://10.1.2.3/hook"}, "webhook"),
    ({"webhook": "ftp://example.com/x"}, "webhook"),
    ({"webhook": "http://127.0.0.1:9/x", "webhook_events": ["job.exploded"]}, "webhook_events"),
    ({"webhook_events": ["job.succeeded"]}, "webhook_events"),
])
def test_a_bad_webhook_is_refused_beside_the_other_fields_and_nothing_is_queued(client, settings, queues, job_count,
                                                                              fields, named):
    answer = client.post("/api/v1/camera-angle/jobs", json={"image": image(settings), "move": "sideways", **fields})
    assert answer.status_code == 422
    assert set(answer.json["error"]["fields"]) == {named, "move"}
    assert job_count() == 0 and queues.total() == 0


def test_a_key_s_default_webhook_applies_when_the_submission_names_none(app, settings, provisioned):
    keys = KeyStore(provisioned.aws.dynamodb, settings.key_table)
    key, token = keys.create("carol", webhook_url="http://127.0.0.1:9/default", webhook_events=("job.failed",))
    client = keyed(app.test_client(), token)
    own = client.post("/api/v1/camera-angle/jobs", json={"image": image(settings), "move": "top_down"}).json
    named = client.post("/api/v1/camera-angle/jobs", json={"image": image(settings), "move": "top_down",
                                                           "webhook": "http://127.0.0.1:9/mine"}).json
    assert provisioned.jobs.get(own["job_id"]).webhook == {"url": "http://127.0.0.1:9/default",
                                                           "events": ["job.failed"], "key_id": key.key_id}
    assert provisioned.jobs.get(named["job_id"]).webhook["url"] == "http://127.0.0.1:9/mine"
    assert provisioned.jobs.get(named["job_id"]).webhook["events"] == [
        "job.running", "job.succeeded", "job.failed", "job.cancelled"]


def test_the_owner_sees_each_delivery_and_resends_one(app, client, settings, provisioned, celery_app, queues,
                                                      receiver):
    token = client.environ_base["HTTP_AUTHORIZATION"].split()[1]
    key_id = token.split("_")[1]
    receiver.secret_store.put(key_id, receiver.secret)
    job_id = client.post("/api/v1/camera-angle/jobs", json={
        "image": image(settings), "move": "top_down", "webhook": receiver.url}).json["job_id"]
    queues.receive(settings.control_queue)  # the lifecycle check the submission asked for
    jobs = celery_app.services.jobs
    jobs.transition(job_id, states.RUNNING)
    jobs.transition(job_id, states.SUCCEEDED, outputs=[])
    # The control worker's part, in process: each delivery the changes queued on the control queue.
    queued = [m["args"] for m in queues.receive(settings.control_queue) if m["headers"]["task"] ==
              "gpuorch.webhooks.deliver"]
    assert queued == [[job_id, "job.running"], [job_id, "job.succeeded"]]
    for args in queued:
        celery_app.deliverer.deliver(*args)
    assert [p["type"] for p in receiver.verified()] == ["job.running", "job.succeeded"]

    listed = client.get(f"/api/v1/jobs/{job_id}/deliveries")
    assert listed.status_code == 200
    assert [(d["event"], d["state"], d["attempts"][0]["status_code"]) for d in listed.json["deliveries"]] == [
        ("job.running", "delivered", 204), ("job.succeeded", "delivered", 204)]

    resent = client.post(f"/api/v1/jobs/{job_id}/deliveries/resend", json={})
    assert resent.status_code == 202 and resent.json["topic"] == "job.succeeded"
    [message] = queues.receive(settings.control_queue)
    assert (message["headers"]["task"], message["args"]) == ("gpuorch.webhooks.resend", [job_id, "job.succeeded"])
    assert client.post(f"/api/v1/jobs/{job_id}/deliveries/resend", json={"event": "job.failed"}).status_code == 404

    # Another owner sees neither the job nor its deliveries.
    other = keyed(app.test_client(), make_key(provisioned, "bob"))
    assert other.get(f"/api/v1/jobs/{job_id}/deliveries").status_code == 404
    assert other.post(f"/api/v1/jobs/{job_id}/deliveries/resend", json={}).status_code == 404
