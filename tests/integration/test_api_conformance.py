"""The running API (gunicorn, a GPU worker) checked against the OpenAPI document it serves: each operation driven
through its answers, each answer's status listed for it, its body by the documented schema, errors in one shape."""

from __future__ import annotations

import dataclasses
import uuid

import requests
import schemathesis

from gpuorch.celery.app import create_celery_app
from gpuorch.webhooks.secrets import SecretStore, new_secret
from tests.integration.conftest import SAMPLE
from tests.webhooks.receiver import Receiver
from tests.webapp.test_api_health import closed_port
from webapp import create_app
from webapp.errors import ErrorSchema


class Conformance:
    """Sends requests to the API and checks every answer against the document it served."""

    def __init__(self, api_url: str, headers: dict[str, str]):
        self.api_url, self.headers = api_url, headers
        self.document = requests.get(f"{api_url}/openapi.json", headers=headers, timeout=10).json()
        self.schema = schemathesis.openapi.from_dict(self.document)
        self.seen: set[tuple[str, str, int]] = set()

    def call(self, method: str, template: str, path: str | None = None, *, headers: dict[str, str] | None = None,
             **kwargs) -> requests.Response:
        answer = requests.request(method, f"{self.api_url}{path or template}",
                                  headers={**self.headers, **(headers or {})}, timeout=30, **kwargs)
        self.check(method, template, answer)
        return answer

    def check(self, method: str, template: str, answer) -> None:
        """schemathesis's checks (status, content type, headers, body schema), then stricter ones of our own."""
        label = f"{method} {template} -> {answer.status_code}"
        self.schema[template][method].validate_response(answer)
        # Every operation also documents a default error: an answer must be listed by its own status.
        responses = self.document["paths"][template][method.lower()]["responses"]
        assert str(answer.status_code) in responses, label
        if answer.status_code >= 400:
            documented = responses[str(answer.status_code)]
            if "$ref" in documented:
                documented = self.document["components"]["responses"][documented["$ref"].rsplit("/", 1)[-1]]
            schema = documented["content"]["application/json"]["schema"]
            # /health's 503 is its report naming the failed component, as documented; every other error is one shape.
            if (template, answer.status_code) != ("/health", 503):
                assert schema == {"$ref": "#/components/schemas/Error"}, (label, schema)
                body = answer.json() if callable(answer.json) else answer.json  # requests', or werkzeug's client's
                assert set(body) == {"error"} and ErrorSchema().validate(body) == {}, (label, body)
                assert set(body["error"]) <= {"code", "message", "fields"}, (label, body)
        self.seen.add((method, template, answer.status_code))

    def operations(self) -> set[tuple[str, str]]:
        return {(method.upper(), path) for path, item in self.document["paths"].items() for method in item
                if method != "parameters"}


def test_every_operation_of_the_running_api_answers_as_its_document_says(stack):
    api_headers = {"Authorization": stack.session.headers["Authorization"]}  # a user key
    operator = {"Authorization": stack.operator.headers["Authorization"]}
    api = Conformance(stack.api_url, api_headers)
    image, missing = stack.image_uri, f"s3://{stack.settings.bucket}/inputs/no-such-image.png"

    api.call("GET", "/")
    api.call("GET", "/health")
    api.call("GET", "/api/v1/workflows")
    api.call("GET", "/api/v1/workflows/{name}", "/api/v1/workflows/camera-angle")
    assert api.call("GET", "/api/v1/workflows/{name}", "/api/v1/workflows/nope").status_code == 404

    # The user key's webhook secret, as `gpuorch keys create` keeps it; a receiver verifying with it.
    key_id = api_headers["Authorization"].split()[1].split("_")[1]
    receiver = Receiver(new_secret())
    SecretStore(stack.services.aws.dynamodb, stack.settings.control_table).put(key_id, receiver.secret)

    # Submissions: JSON (with a webhook, waiting for its end), multipart with the image as a file part, the generic
    # route; refusals.
    waited = api.call("POST", "/api/v1/camera-angle/jobs", json={"image": image, "move": "close_up",
                                                                  "webhook": receiver.url},
                      headers={"Prefer": "wait=60"})
    assert waited.status_code == 200 and waited.json()["status"] == "succeeded", waited.text
    assert waited.headers["Preference-Applied"] == "wait=60"
    camera = waited.json()
    with open(SAMPLE, "rb") as png:
        edit = api.call("POST", "/api/v1/qwen-image-edit/jobs", data={"params": '{"prompt": "Paint it blue"}'},
                        files={"images": ("house.png", png, "image/png")}).json()
    failing = api.call("POST", "/api/v1/workflows/{name}/jobs", "/api/v1/workflows/camera-angle/jobs",
                       json={"image": missing, "move": "top_down"}).json()
    assert {edit["status"], failing["status"]} == {"queued"}
    assert api.call("POST", "/api/v1/workflows/{name}/jobs", "/api/v1/workflows/nope/jobs",
                    json={}).status_code == 404
    assert api.call("POST", "/api/v1/camera-angle/jobs", data="{not json",
                    headers={"Content-Type": "application/json"}).status_code == 400
    assert api.call("POST", "/api/v1/qwen-image-edit/jobs", json={"prompt": "", "images": []}).status_code == 422

    # Waiting, the event stream and the webhook deliveries of a job over; their refusals.
    camera_path = f"/api/v1/jobs/{camera['job_id']}"
    assert api.call("GET", "/api/v1/jobs/{job_id}", camera_path, params={"wait": 30}).json()["status"] == "succeeded"
    stream = api.call("GET", "/api/v1/jobs/{job_id}/events", f"{camera_path}/events")
    assert stream.headers["Content-Type"].startswith("text/event-stream") and "event: end" in stream.text
    assert api.call("GET", "/api/v1/jobs/{job_id}/events", "/api/v1/jobs/nope/events").status_code == 404
    # The control worker's part (this stack runs none: tests/deploy/test_iam_live.py has one deliver them), in process.
    deliverer = create_celery_app(stack.settings).deliverer
    for event in ("job.running", "job.succeeded"):
        deliverer.deliver(camera["job_id"], event)
    assert {p["type"] for p in receiver.verified()} == {"job.running", "job.succeeded"}
    deliveries = api.call("GET", "/api/v1/jobs/{job_id}/deliveries", f"{camera_path}/deliveries").json()
    assert {(d["event"], d["state"]) for d in deliveries["deliveries"]} == {("job.running", "delivered"),
                                                                           ("job.succeeded", "delivered")}
    assert api.call("GET", "/api/v1/jobs/{job_id}/deliveries", "/api/v1/jobs/nope/deliveries").status_code == 404
    resent = api.call("POST", "/api/v1/jobs/{job_id}/deliveries/resend", f"{camera_path}/deliveries/resend",
                      json={"event": "job.succeeded"})
    assert resent.status_code == 202 and resent.json()["topic"] == "job.succeeded"
    deliverer.resend(camera["job_id"], "job.succeeded")
    assert sum(p["type"] == "job.succeeded" for p in receiver.verified()) == 2
    receiver.close()
    assert api.call("POST", "/api/v1/jobs/{job_id}/deliveries/resend", f"/api/v1/jobs/{edit['job_id']}/deliveries/resend",
                    json={}).status_code == 404

    # Records: succeeded (outputs with download URLs), failed, queued; cancelled; unknown.
    for job, status in ((camera, "succeeded"), (edit, "succeeded"), (failing, "failed")):
        assert stack.wait_terminal(job["job_id"])["status"] == status
        record = api.call("GET", "/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job['job_id']}").json()
        assert record["status"] == status and (record["outputs"] or status == "failed")
    queued_id = f"conformance-{uuid.uuid4()}"  # a record nothing will run: cancelled while queued
    stack.services.jobs.create(queued_id, "camera-angle", {"image": image, "move": "close_up"}, source="api",
                               owner=stack.settings.submit_owner)
    api.call("GET", "/api/v1/jobs/{job_id}", f"/api/v1/jobs/{queued_id}")
    assert api.call("POST", "/api/v1/jobs/{job_id}/cancel", f"/api/v1/jobs/{queued_id}/cancel").status_code == 200
    assert api.call("POST", "/api/v1/jobs/{job_id}/cancel", f"/api/v1/jobs/{queued_id}/cancel").status_code == 409
    assert api.call("POST", "/api/v1/jobs/{job_id}/cancel", "/api/v1/jobs/nope/cancel").status_code == 404
    assert api.call("GET", "/api/v1/jobs/{job_id}", "/api/v1/jobs/nope").status_code == 404

    # Batches: accepted whole or refused whole; followed and cancelled as one.
    items = [{"workflow": "camera-angle", "image": image, "move": "top_down"},
             {"workflow": "qwen-image-edit", "prompt": "Snow on the roof", "images": [image], "priority": "low"}]
    batch = api.call("POST", "/api/v1/batches", json={"items": items}).json()
    assert api.call("POST", "/api/v1/batches", json={"items": [{"workflow": "nope"}]}).status_code == 422
    assert api.call("GET", "/api/v1/batches/{batch_id}", f"/api/v1/batches/{batch['batch_id']}").json()["total"] == 2
    assert api.call("GET", "/api/v1/batches/{batch_id}", "/api/v1/batches/nope").status_code == 404
    assert api.call("POST", "/api/v1/batches/{batch_id}/cancel",
                    f"/api/v1/batches/{batch['batch_id']}/cancel").json()["finished"]

    # Lists and costs, with their refusals.
    first = api.call("GET", "/api/v1/jobs", params={"limit": 2}).json()
    assert first["next_cursor"] and api.call("GET", "/api/v1/jobs", first["links"]["next"]).status_code == 200
    api.call("GET", "/api/v1/jobs", params={"status": "succeeded"})
    assert api.call("GET", "/api/v1/jobs", params={"limit": 0}).status_code == 422
    assert api.call("GET", "/api/v1/jobs", headers={"Authorization": "Bearer gpo_nope"}).status_code == 401

    # Operator routes: refused to a user key, answered to an operator's.
    assert api.call("GET", "/api/v1/costs").status_code == 403
    api.call("GET", "/api/v1/costs", headers=operator)
    api.call("GET", "/api/v1/costs", params={"from": "2026-01-01", "to": "2026-01-31"}, headers=operator)
    assert api.call("GET", "/api/v1/costs", params={"from": "yesterday"}, headers=operator).status_code == 422
    api.call("GET", "/api/v1/gpu", headers=operator)
    for action in ("start", "stop"):
        assert api.call("POST", f"/api/v1/gpu/{{instance_id}}/{action}", f"/api/v1/gpu/i-0123456789abcdef0/{action}",
                        headers=operator).status_code == 404
    api.call("GET", "/api/v1/dead-letters", headers=operator)
    assert api.call("POST", "/api/v1/dead-letters/redrive", json={"ids": ["nope"]}, headers=operator).status_code == 200
    assert api.call("POST", "/api/v1/dead-letters/redrive", json={}, headers=operator).status_code == 422

    # What a healthy stack cannot show: a body over the limit (413) and AWS out of reach (503), in process. Their
    # Celery apps are not made current: the tests after this one publish through the stack's.
    small = create_app(dataclasses.replace(stack.settings, max_request_bytes=1024), celery_app=create_celery_app(stack.settings)).test_client()
    answer = small.post("/api/v1/camera-angle/jobs", json={"image": image, "move": "close_up", "x": "x" * 2048},
                        headers=api_headers)
    api.check("POST", "/api/v1/camera-angle/jobs", answer)
    assert answer.status_code == 413
    no_waiting = dataclasses.replace(stack.settings, api_waiters=0)
    busy = create_app(no_waiting, celery_app=create_celery_app(no_waiting)).test_client()
    waiting_id = f"conformance-{uuid.uuid4()}"  # queued, and never run: no message was sent for it
    stack.services.jobs.create(waiting_id, "camera-angle", {"image": image, "move": "close_up"}, source="api")
    answer = busy.get(f"/api/v1/jobs/{waiting_id}?wait=5", headers=operator)
    api.check("GET", "/api/v1/jobs/{job_id}", answer)
    assert answer.status_code == 503 and answer.json["error"]["code"] == "too_many_waiters"
    down = dataclasses.replace(stack.settings, aws_endpoint_url=f"http://127.0.0.1:{closed_port()}")
    offline = create_app(down, celery_app=create_celery_app(down)).test_client()
    for method, template, path, kwargs in (
        ("GET", "/health", "/health", {}),
        ("GET", "/api/v1/jobs/{job_id}", "/api/v1/jobs/nope", {}),
        ("GET", "/api/v1/jobs", "/api/v1/jobs", {}),
        ("GET", "/api/v1/costs", "/api/v1/costs", {}),
    ):
        # The key is verified before AWS is asked anything else: without AWS, the key cannot be read either.
        answer = offline.open(path, method=method, headers=operator, **kwargs)
        api.check(method, template, answer)
        assert answer.status_code == 503, (template, answer.status_code)

    assert {(method, template) for method, template, _ in api.seen} == api.operations()
