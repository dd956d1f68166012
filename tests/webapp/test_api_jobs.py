"""GET /api/v1/jobs/{id} and GET /api/v1/jobs: records as stored, newest first, paged by cursor; why a queued job
waits when the last lifecycle check could not start a GPU."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs.store import JobStore
from tests.webapp.conftest import keyed
from webapp import create_app
from webapp.context import EXTENSION
from lifecycle.decision import hold_reason
from lifecycle.live.check import StatusStore
from lifecycle.model import Action, Decision, Refusal


class StepClock:
    """Each reading one second after the last, so every record has its own created_at."""

    def __init__(self):
        self.now = datetime(2025, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(provisioned, settings) -> JobStore:
    return JobStore(provisioned.aws.dynamodb, settings.job_table, ttl_seconds=3600, clock=StepClock())


@pytest.fixture
def jobs(store) -> list[str]:
    """Seven jobs, oldest first; the 2nd, 4th and 6th are running."""
    ids = [f"job-{n}" for n in range(7)]
    for job_id in ids:
        store.create(job_id, "camera-angle", {"image": "s3://b/k.png", "move": "close_up"}, source="python", owner="alice")
    for job_id in ids[1::2]:
        store.transition(job_id, "running", node="13")
    return ids


def pages(client, query: str) -> list[dict]:
    """Every page of a listing, following next links."""
    answers = [client.get(f"/api/v1/jobs?{query}")]
    while "next" in answers[-1].json["links"]:
        assert answers[-1].status_code == 200
        answers.append(client.get(answers[-1].json["links"]["next"]))
    return [answer.json for answer in answers]


def test_one_job_reads_back_with_every_field(client, store, jobs):
    answer = client.get("/api/v1/jobs/job-1")

    assert answer.status_code == 200
    record = store.get("job-1")
    # Where it is (tests/webapp/test_api_whereabouts.py): running, a finish estimated from the defaults.
    body = answer.json
    assert body.pop("eta")["start_in_s"] == 0
    assert body == {
        "job_id": "job-1",
        "workflow": "camera-angle",
        "status": "running",
        "progress": 0,
        "node": "13",
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "started_at": record.started_at,
        "finished_at": None,
        "attempts": 1,
        "params": {"image": "s3://b/k.png", "move": "close_up"},
        "outputs": [],
        "error": None,
        "source": "python",
        "owner": "alice",
        "gpu_seconds": None,
        "redrive_of": None,
        "redriven_as": None,
        "output": {"format": "png", "quality": None, "inline": False},
        "priority": "normal",
        "deadline": None,
        "batch_id": None,
        "links": {"self": "/api/v1/jobs/job-1"},
        "waiting_reason": None,
        "webhook": None,
        "phase": "running",
        "queue_position": 0,
        "estimate": None,  # made by a submission over the API only
        "actual": None,
    }


def test_an_unknown_job_is_404(client, jobs):
    answer = client.get("/api/v1/jobs/no-such-job")

    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "job_not_found"
    assert "no-such-job" in answer.json["error"]["message"]


def test_an_id_no_job_can_have_is_404_without_asking_dynamodb(client, app, settings):
    """DynamoDB refuses a key over 2048 bytes (moto does not); that refusal used to be answered 503, as if the
    table were down. The job table is not asked at all."""
    asked = []
    dynamodb = app.extensions["gpuorch"].services.aws.dynamodb
    dynamodb.meta.events.register("before-call.dynamodb.*", lambda params, **_: asked.append(params.get("TableName")))
    long_id = "j" * 2049
    for answer in (client.get(f"/api/v1/jobs/{long_id}"), client.post(f"/api/v1/jobs/{long_id}/cancel")):
        assert answer.status_code == 404 and answer.json["error"]["code"] == "job_not_found"
        assert len(answer.json["error"]["message"]) < 200
    assert settings.job_table not in asked


def test_listing_pages_through_every_job_newest_first(client, jobs):
    listing = pages(client, "limit=3")

    assert [[job["job_id"] for job in page["jobs"]] for page in listing] == [
        ["job-6", "job-5", "job-4"],
        ["job-3", "job-2", "job-1"],
        ["job-0"],
    ]
    assert listing[-1]["next_cursor"] is None
    assert all(page["next_cursor"] for page in listing[:-1])
    assert listing[1]["links"]["self"] == f"/api/v1/jobs?limit=3&cursor={listing[0]['next_cursor']}"


def test_listing_by_status(client, jobs):
    listing = pages(client, "status=running&limit=2")

    assert [job["job_id"] for page in listing for job in page["jobs"]] == ["job-5", "job-3", "job-1"]
    assert {job["status"] for page in listing for job in page["jobs"]} == {"running"}
    assert all("status=running" in page["links"]["self"] for page in listing)


def test_listing_defaults_to_twenty(client, jobs):
    answer = client.get("/api/v1/jobs")

    assert answer.status_code == 200
    assert [job["job_id"] for job in answer.json["jobs"]] == [f"job-{n}" for n in range(6, -1, -1)]
    assert answer.json["next_cursor"] is None
    assert answer.json["links"] == {"self": "/api/v1/jobs?limit=20"}


def test_an_empty_listing(client, provisioned):
    answer = client.get("/api/v1/jobs?status=failed")

    assert answer.status_code == 200
    assert (answer.json["jobs"], answer.json["next_cursor"]) == ([], None)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=sleeping", "status"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WzEsMl0", "cursor"),  # valid base64 JSON, but not [created_at, job_id] strings
        ("colour=red", "colour"),
    ],
)
def test_a_bad_query_is_422_naming_the_parameter(client, query, field):
    answer = client.get(f"/api/v1/jobs?{query}")

    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "invalid_params"
    assert list(answer.json["error"]["fields"]) == [field]


BUDGET_REASON = "monthly budget: $99.10 spent of $100.00; an hour more at $2.24/h would pass it (1 job(s) waiting)"


def last_check(provisioned, settings, *actions: Action) -> None:
    decision = Decision(actions=actions, queue_visible=1, queue_in_flight=0, running=0, pending=0, stopping=0, wanted=1)
    StatusStore(provisioned.aws.dynamodb, settings.control_table).write(decision, datetime.now(timezone.utc))


def test_a_queued_job_says_why_it_waits_when_the_last_check_was_blocked(client, jobs, provisioned, settings):
    last_check(provisioned, settings, Action("blocked", "i-1", BUDGET_REASON))

    assert client.get("/api/v1/jobs/job-0").json["waiting_reason"] == BUDGET_REASON
    assert client.get("/api/v1/jobs/job-1").json["waiting_reason"] is None  # running: not waiting
    listed = {job["job_id"]: job["waiting_reason"] for job in client.get("/api/v1/jobs").json["jobs"]}
    assert listed == {f"job-{n}": BUDGET_REASON if n % 2 == 0 else None for n in range(7)}


def test_a_queued_job_names_the_held_instance_that_cannot_serve(client, jobs, provisioned, settings):
    refusal = Refusal("i-1", datetime.now(timezone.utc), ("camera-angle: the server has no loras file 'x'",))
    last_check(provisioned, settings, Action("blocked", "i-1", hold_reason(refusal)))

    reason = client.get("/api/v1/jobs/job-0").json["waiting_reason"]

    assert reason.startswith("the GPU instance i-1 cannot serve: its worker refused to start: camera-angle: the "
                             "server has no loras file 'x'; held until its configuration changes or an operator")


@pytest.mark.parametrize("actions", [(), (Action("start", "i-1", "1 job(s) waiting"),)])
def test_a_queued_job_has_no_waiting_reason_when_the_last_check_was_not_blocked(client, jobs, provisioned, settings,
                                                                                actions):
    last_check(provisioned, settings, *actions)

    assert client.get("/api/v1/jobs/job-0").json["waiting_reason"] is None


def test_no_check_yet_or_an_unreadable_status_leaves_the_reason_null(client, jobs, provisioned, settings, celery_app,
                                                                    api_key):
    assert client.get("/api/v1/jobs/job-0").json["waiting_reason"] is None
    # The job's record is still answered when the control table cannot be read (by a process that has not read the
    # status yet: one that has answers what it read, for 2 s).
    provisioned.aws.dynamodb.delete_table(TableName=settings.control_table)

    answer = keyed(create_app(settings, celery_app=celery_app).test_client(), api_key).get("/api/v1/jobs/job-0")

    assert answer.status_code == 200
    assert answer.json["waiting_reason"] is None


def test_answers_about_queued_jobs_read_the_last_check_once_for_a_while(app, client, jobs, provisioned, settings):
    """Each stream and each GET of a queued job says why it waits: one read of the status serves a process's answers
    for 2 s (as their place and eta do), not one read per answer."""
    last_check(provisioned, settings, Action("blocked", "i-1", BUDGET_REASON))
    reads = []
    app.extensions[EXTENSION].lifecycle._dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.GetItem",
        lambda params, **_: reads.append(params) if params["Key"].get("pk") == {"S": "status"} else None)
    answer = client.get("/api/v1/jobs/job-0")
    assert answer.json["waiting_reason"] == BUDGET_REASON, answer.json
    first = len(reads)
    for _ in range(3):
        assert client.get("/api/v1/jobs/job-0").json["waiting_reason"] == BUDGET_REASON
    assert first >= 1 and len(reads) == first
