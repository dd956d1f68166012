"""Telling the caller, with real processes: a job submitted while the GPU is stopped says where it is as the
lifecycle starts the GPU (the API reading the control worker's checks and the GPU worker's heartbeats), its event
stream follows it to its end, a wait answers when it ends, and its webhooks reach a receiver on loopback that
verifies them, the one it first refuses tried again by beat's sweep."""

from __future__ import annotations

import json
import threading

import requests

from gpuorch.access.keys import USER, KeyStore
from gpuorch.webhooks.secrets import SecretStore, new_secret
from tests.integration.conftest import wait_for
from tests.integration.test_lifecycle import gpu_lifecycle  # noqa: F401 - the fixture
from tests.webhooks.receiver import Receiver

PHASES = ("waiting_for_gpu", "gpu_starting", "queued", "running")


def owner_session(gpu, secret: str) -> requests.Session:
    """A user key of its own with a webhook secret, as `gpuorch keys create` makes them."""
    key, token = KeyStore(gpu.services.aws.dynamodb, gpu.settings.key_table).create("tests", role=USER,
                                                                                     name="telling the caller")
    SecretStore(gpu.services.aws.dynamodb, gpu.settings.control_table).put(key.key_id, secret)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def read_stream(answer: requests.Response, into: list) -> None:
    """Every (event, data) of a Server-Sent Events answer, as they come, until it ends."""
    event, data = None, []
    for line in answer.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            data.append(line[len("data: "):])
        elif not line and data:
            into.append((event, json.loads("\n".join(data))))
            event, data = None, []


def test_a_caller_hears_where_its_job_is_and_how_it_ends(gpu_lifecycle):  # noqa: F811
    # 8 sampler steps of 0.3 s: the run reports its progress.
    gpu = gpu_lifecycle(webhook_sweep_seconds=1, idle_stop_seconds=120, step_seconds=0.3)
    [instance_id] = gpu.agents
    assert gpu.state(instance_id) == "stopped"
    receiver = Receiver(new_secret(), answers_by_event={"job.succeeded": [503]})
    session = owner_session(gpu, receiver.secret)
    api = gpu.api_url

    # Asked to wait a second, the submission answers 202 (the GPU is a cold start away) with its price quote.
    submitted = session.post(f"{api}/api/v1/camera-angle/jobs", headers={"Prefer": "wait=1"}, timeout=30, json={
        "image": gpu.image_uri, "move": "top_down", "webhook": receiver.url,
        "webhook_events": ["job.running", "job.succeeded"]})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    job_id, quote = job["job_id"], job["estimate"]
    assert quote["phase"] == "waiting_for_gpu" and 0 < quote["usd_warm"] < quote["usd_cold"], quote

    streamed: list = []
    follower = requests.Session()  # a session of its own: requests' sessions are not shared between threads
    follower.headers.update(session.headers)
    stream = follower.get(f"{api}/api/v1/jobs/{job_id}/events", stream=True, timeout=(10, 60))
    assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    reader = threading.Thread(target=read_stream, args=(stream, streamed), daemon=True)
    reader.start()

    # Polled meanwhile, the record moves through the phases in order as the GPU starts, becomes ready and runs it.
    seen: list[str] = []

    def over():
        record = session.get(f"{api}/api/v1/jobs/{job_id}", timeout=10).json()
        if record["phase"] and (not seen or seen[-1] != record["phase"]):
            seen.append(record["phase"])
        return record["status"] in ("succeeded", "failed", "cancelled") and record

    record = wait_for(over, 180, interval=0.2, message="the job to run on the started GPU")
    assert record["status"] == "succeeded", record
    assert seen[0] == "waiting_for_gpu" and "gpu_starting" in seen, seen
    assert [PHASES.index(phase) for phase in seen] == sorted(PHASES.index(phase) for phase in seen), seen

    # A wait on a job that is over answers at once; the record shows the actual beside the estimate.
    waited = session.get(f"{api}/api/v1/jobs/{job_id}", params={"wait": 30}, timeout=10)
    assert waited.elapsed.total_seconds() < 5 and waited.json()["status"] == "succeeded"
    actual = waited.json()["actual"]
    assert actual["gpu_seconds"] > 0 and actual["usd"] > 0 and actual["finish_error_s"] is not None, actual

    # The stream told the waiting phases, the run's progress and its end, which holds the final record.
    reader.join(timeout=30)
    assert not reader.is_alive(), streamed
    names = [name for name, _ in streamed]
    assert names[0] == "status" and names[-1] == "end" and "progress" in names, names
    # Opened a second after the submission, the stream starts where the job waits by then: for the GPU's start, or
    # already for the started GPU (the submission's check may have started it within that second); in order after.
    waiting = [data["phase"] for name, data in streamed if name == "status" and data.get("phase") in PHASES[:3]]
    assert waiting and waiting[0] in ("waiting_for_gpu", "gpu_starting"), streamed
    assert [PHASES.index(phase) for phase in waiting] == sorted(PHASES.index(phase) for phase in waiting), waiting
    assert [data["status"] for name, data in streamed if name == "status"][-2:] == ["running", "succeeded"]
    assert streamed[-1][1]["status"] == "succeeded" and streamed[-1][1]["outputs"], streamed[-1]

    # Webhooks, signed with the key's secret: job.running at once; job.succeeded refused once (503), then tried again
    # by beat's sweep when due (5 s later) and delivered; each once however often announced.
    def delivered():
        events = [payload["type"] for payload in receiver.verified()]
        return events.count("job.succeeded") == 2 and events

    events = wait_for(delivered, 60, message="job.succeeded to be tried again and delivered")
    assert sorted(events) == ["job.running", "job.succeeded", "job.succeeded"], events
    assert all(r.problem is None for r in receiver.received), [r.problem for r in receiver.received]
    [succeeded_payload, *_] = [p for p in receiver.verified() if p["type"] == "job.succeeded"]
    assert succeeded_payload["data"]["job_id"] == job_id and succeeded_payload["data"]["outputs"][0]["url"]
    deliveries = {d["event"]: d for d in session.get(f"{api}/api/v1/jobs/{job_id}/deliveries",
                                                     timeout=10).json()["deliveries"]}
    assert [a["status_code"] for a in deliveries["job.succeeded"]["attempts"]] == [503, 204]
    assert (deliveries["job.succeeded"]["state"], deliveries["job.running"]["state"]) == ("delivered", "delivered")
    for closing in (follower, session, receiver):
        closing.close()
