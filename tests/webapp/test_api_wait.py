"""Hearing a job end through the API: GET ?wait=N, Prefer: wait=N on a submission, and the event stream; each
answered as soon as the job moves, and a bound on waiting requests per process answered 503."""

from __future__ import annotations

import dataclasses
import json
import threading
import time


from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from tests.conftest import wait_for
from tests.webapp.conftest import keyed
from webapp import create_app
from webapp.context import EXTENSION
from webapp.views import events


def image(settings) -> str:
    return f"s3://{settings.bucket}/inputs/cat.png"


def watch_of(app):
    return app.extensions[EXTENSION].watch


def when_followed(app, job_id: str, *moves) -> threading.Thread:
    """Once a request follows the job, make each move (status, fields) in turn, each once the watch has read the
    record the move before made."""
    jobs = app.extensions[EXTENSION].services.jobs

    def act():
        watch = watch_of(app)
        wait_for(lambda: watch.following > 0, 10, message="a request to follow the job")
        for status, fields in moves:
            reads = watch.reads
            if status == "progress":
                jobs.report_progress(job_id, fields["progress"], fields.get("node"))
            else:
                jobs.transition(job_id, status, **fields)
            wait_for(lambda: watch.reads >= reads + 2 or not watch.following, 10, message="the watch to read the move")

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def submit(client, settings, **headers):
    return client.post("/api/v1/camera-angle/jobs", json={"image": image(settings), "move": "top_down"},
                       headers=headers)


def test_get_with_wait_answers_as_soon_as_the_job_is_over(app, client, settings):
    job_id = submit(client, settings).json["job_id"]
    mover = when_followed(app, job_id, (states.RUNNING, {}), (states.SUCCEEDED, {"outputs": []}))
    started = time.monotonic()
    answer = client.get(f"/api/v1/jobs/{job_id}?wait=30")
    mover.join()
    assert answer.status_code == 200 and answer.json["status"] == "succeeded"
    assert time.monotonic() - started < 10
    assert watch_of(app).following == 0


def test_get_with_wait_answers_the_record_as_it_is_when_the_wait_runs_out(client, settings):
    job_id = submit(client, settings).json["job_id"]
    started = time.monotonic()
    answer = client.get(f"/api/v1/jobs/{job_id}?wait=0.5")
    assert answer.status_code == 200 and answer.json["status"] == "queued"
    assert 0.5 <= time.monotonic() - started < 5
    assert client.get(f"/api/v1/jobs/{job_id}?wait=61").status_code == 422


def test_a_submission_preferring_to_wait_gets_the_finished_record(app, client, settings):
    job = submit(client, settings).json  # the first job: a second submission is moved once followed
    jobs = app.extensions[EXTENSION].services.jobs

    def finish_next():
        watch = watch_of(app)
        wait_for(lambda: watch.following > 0, 10, message="the submission to wait")
        [followed] = [j for j in jobs.list(status="queued", limit=10)[0] if j.job_id != job["job_id"]]
        jobs.transition(followed.job_id, states.RUNNING)
        jobs.transition(followed.job_id, states.FAILED, error="no GPU today")

    mover = threading.Thread(target=finish_next, daemon=True)
    mover.start()
    answer = submit(client, settings, Prefer="wait=20")
    mover.join()
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "failed" and answer.json["error"] == "no GPU today"
    assert answer.headers["Preference-Applied"] == "wait=20" and answer.headers["Location"].endswith(
        answer.json["job_id"])

    not_over = submit(client, settings, Prefer="respond-async, wait=1")
    assert not_over.status_code == 202 and not_over.headers["Preference-Applied"] == "wait=1"
    assert not_over.json["status"] == "queued"


def test_the_event_stream_tells_each_change_and_ends_with_the_final_record(app, client, settings):
    job_id = submit(client, settings).json["job_id"]
    jobs = app.extensions[EXTENSION].services.jobs
    # Each move is made once the stream has told the one before: a reader slower than the job hears only the
    # latest record the watch read (progress coalesced), and this test is about what is told, not about timing.
    moves = [lambda: jobs.transition(job_id, states.RUNNING),
             lambda: jobs.report_progress(job_id, 40, "3 KSampler"),
             lambda: jobs.transition(job_id, states.SUCCEEDED, outputs=[], gpu_seconds=1.5)]
    answer = client.get(f"/api/v1/jobs/{job_id}/events", buffered=False)
    assert answer.status_code == 200 and answer.mimetype == "text/event-stream"
    events = []
    for chunk in answer.response:
        lines = dict(line.split(": ", 1) for line in chunk.decode().splitlines() if line and not line.startswith(":"))
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
            if moves:
                moves.pop(0)()
    answer.close()  # as the server does once the stream ends
    assert [(name, data.get("status"), data.get("progress")) for name, data in events] == [
        ("status", "queued", 0), ("status", "running", 0), ("progress", None, 40), ("status", "succeeded", 100),
        ("end", "succeeded", 100)]
    assert events[-1][1]["gpu_seconds"] == 1.5 and events[-1][1]["links"]["self"].endswith(job_id)
    wait_for(lambda: watch_of(app).following == 0, 5, message="the stream to let its follower go")

    # A job already over: its end at once.
    over = client.get(f"/api/v1/jobs/{job_id}/events").get_data(as_text=True)
    assert over.count("event: ") == 2 and "event: end" in over


def test_past_its_waiters_a_process_answers_503_and_other_requests_go_on(moto_endpoint, resources, provisioned,
                                                                         api_key, settings):
    small = dataclasses.replace(settings, api_waiters=1)
    app = create_app(small, celery_app=create_celery_app(small))
    client = keyed(app.test_client(), api_key)
    job_id = submit(client, small).json["job_id"]
    holder = threading.Thread(target=lambda: client.get(f"/api/v1/jobs/{job_id}?wait=3"), daemon=True)
    holder.start()
    wait_for(lambda: watch_of(app).following == 1, 10, message="the first request to wait")

    refused = client.get(f"/api/v1/jobs/{job_id}?wait=3")
    assert refused.status_code == 503 and refused.json["error"]["code"] == "too_many_waiters"
    assert refused.headers["Retry-After"] == "5"
    assert client.get(f"/api/v1/jobs/{job_id}/events").status_code == 503
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200  # no wait: answered at once
    assert submit(client, small, Prefer="wait=5").status_code == 202  # accepted, only not waited for
    holder.join()


def test_an_ended_jobs_last_status_event_and_its_end_are_made_from_one_answer(app, client, settings, monkeypatch):
    job_id = submit(client, settings).json["job_id"]
    jobs = app.extensions[EXTENSION].services.jobs
    jobs.transition(job_id, states.RUNNING)
    jobs.transition(job_id, states.SUCCEEDED, outputs=[], gpu_seconds=1.0)
    made = []
    answers = events.answers
    monkeypatch.setattr(events, "answers", lambda found: made.append(len(found)) or answers(found))

    body = client.get(f"/api/v1/jobs/{job_id}/events").get_data(as_text=True)

    assert body.count("event: status") == 1 and body.count("event: end") == 1
    assert made == [1]  # its answer (with its outputs' signed links) made once, not once per event
