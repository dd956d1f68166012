"""GET /metrics: submissions counted by workflow and outcome, requests timed by route template and status."""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from tests.webapp.conftest import keyed
from tests.webapp.test_api_health import client_for


def scrape(client, operator_key: str) -> dict[tuple[str, tuple], float]:
    """/metrics, asked with an operator key (as Prometheus sends it)."""
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {operator_key}"})
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.get_data(as_text=True))
        for sample in family.samples
    }


def submissions(seen, workflow: str, outcome: str) -> float:
    return seen.get(("gpuorch_api_submissions_total", (("outcome", outcome), ("workflow", workflow))), 0.0)


def test_metrics_need_an_operator_key(client):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401


def test_submissions_are_counted_by_workflow_and_outcome(client, settings, provisioned, operator_key):
    image = f"s3://{settings.bucket}/inputs/house.png"
    for _ in range(2):
        assert client.post("/api/v1/camera-angle/jobs", json={"image": image, "move": "close_up"}).status_code == 202
    assert client.post("/api/v1/workflows/qwen-image-edit/jobs",
                       json={"prompt": "blue", "images": [image]}).status_code == 202
    assert client.post("/api/v1/camera-angle/jobs", json={"image": image, "move": "sideways"}).status_code == 422
    assert client.post("/api/v1/workflows/no-such-thing/jobs", json={}).status_code == 404

    seen = scrape(client, operator_key)

    assert submissions(seen, "camera-angle", "accepted") == 2
    assert submissions(seen, "qwen-image-edit", "accepted") == 1
    assert submissions(seen, "camera-angle", "invalid") == 1
    # A name outside the catalogue is not a label of its own: clients cannot grow the series.
    assert submissions(seen, "unknown", "unknown_workflow") == 1


def test_a_body_over_the_limit_counts_as_too_large(settings, provisioned, api_key, operator_key):
    client = keyed(client_for(dataclasses.replace(settings, max_request_bytes=1024)), api_key)
    assert client.post("/api/v1/camera-angle/jobs", json={"image": "x" * 4096, "move": "close_up"}).status_code == 413

    assert submissions(scrape(client, operator_key), "camera-angle", "too_large") == 1


def test_requests_are_timed_by_route_template_not_path(client, provisioned, operator_key):
    client.get("/api/v1/jobs/0f0e5a1c-0000-4000-8000-000000000000")
    client.get("/api/v1/jobs/0f0e5a1c-0000-4000-8000-000000000001")
    client.get("/no/such/path")

    seen = scrape(client, operator_key)

    count = "gpuorch_api_request_duration_seconds_count"
    assert seen[(count, (("method", "GET"), ("route", "/api/v1/jobs/<string:job_id>"), ("status", "404")))] == 2
    assert seen[(count, (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert not any("0f0e5a1c" in str(labels) for _name, labels in seen)
