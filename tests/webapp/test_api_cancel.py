"""POST /api/v1/jobs/{id}/cancel: queued and running jobs become cancelled; finished ones answer 409."""

import pytest

from gpuorch.jobs import states


@pytest.fixture
def jobs(provisioned):
    return provisioned.jobs


@pytest.mark.parametrize("start", [states.QUEUED, states.RUNNING])
def test_a_queued_or_running_job_is_cancelled(client, jobs, start):
    jobs.create("j1", "camera-angle", {}, source="api", owner="alice")
    if start == states.RUNNING:
        jobs.transition("j1", states.RUNNING)

    answer = client.post("/api/v1/jobs/j1/cancel")

    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "cancelled" and answer.json["finished_at"]
    assert jobs.get("j1").status == states.CANCELLED


@pytest.mark.parametrize("end", [states.SUCCEEDED, states.FAILED, states.CANCELLED])
def test_a_finished_job_answers_409_and_stays_as_it_was(client, jobs, end):
    jobs.create("j1", "camera-angle", {}, source="api", owner="alice")
    jobs.transition("j1", states.RUNNING)
    jobs.transition("j1", end)

    answer = client.post("/api/v1/jobs/j1/cancel")

    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "job_finished" and end in answer.json["error"]["message"]
    assert jobs.get("j1").status == end


def test_an_unknown_job_answers_404(client, provisioned):
    answer = client.post("/api/v1/jobs/nope/cancel")
    assert answer.status_code == 404 and answer.json["error"]["code"] == "job_not_found"
