"""Where a job is and what it will cost, from the lifecycle's real state in the control table: its phase, place and
eta as the GPU moves from stopped to starting to ready (or cannot start), a price quote at submission from the
workflow's observed times, and once it ends the actual beside the estimate, judged in the cost report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.jobs import states
from lifecycle import facade
from lifecycle.eta import DEFAULT_COLD_START
from lifecycle.live.check import StatusStore
from lifecycle.live.heartbeats import HEARTBEAT_TTL_S, HeartbeatStore
from lifecycle.live.runs import RunLog
from lifecycle.model import SPOT, Action, Decision, Instance
from lifecycle.prices import G6E_2XLARGE, region_prices
from webapp.views import events

# What the pool's g6e.2xlarge costs on demand in the tests' region (us-east-1).
ON_DEMAND_USD = region_prices("us-east-1").hourly(G6E_2XLARGE)


@pytest.fixture(autouse=True)
def fresh_reads(monkeypatch):
    """Each answer reads the lifecycle afresh (an API process reuses it for seconds)."""
    monkeypatch.setattr(facade, "GPU_VIEW_TTL_S", 0.0)
    monkeypatch.setattr(facade, "QUEUE_TTL_S", 0.0)
    monkeypatch.setattr(facade, "TIMES_TTL_S", 0.0)


def image(settings) -> str:
    return f"s3://{settings.bucket}/inputs/cat.png"


def check_saw(provisioned, settings, *instances: Instance, blocked: str | None = None,
              market: dict | None = None) -> None:
    """A lifecycle check's outcome, as the control worker writes it."""
    actions = (Action("blocked", None, blocked),) if blocked else (Action("none", None, "nothing to do"),)
    decision = Decision(actions, 0, 0, 0, 0, 0, 0)
    StatusStore(provisioned.aws.dynamodb, settings.control_table).write(decision, datetime.now(timezone.utc),
                                                                          instances, market)


def submit(client, settings) -> dict:
    answer = client.post("/api/v1/camera-angle/jobs", json={"image": image(settings), "move": "top_down"})
    assert answer.status_code == 202, answer.json
    return answer.json


def test_a_queued_job_follows_the_gpu_from_stopped_to_starting_to_ready(client, settings, provisioned):
    check_saw(provisioned, settings, Instance("i-gpu", "stopped"))
    first, second = submit(client, settings), submit(client, settings)
    quote = first["estimate"]
    assert (quote["phase"], quote["gpu_seconds"], quote["observed_jobs"], quote["hourly_usd"]) == (
        "waiting_for_gpu", 30.0, 0, ON_DEMAND_USD)
    assert quote["usd_warm"] == pytest.approx(30 * ON_DEMAND_USD / 3600, abs=1e-6)
    assert quote["usd_cold"] == pytest.approx((DEFAULT_COLD_START.billed_s + 30) * ON_DEMAND_USD / 3600, abs=1e-6)

    record = client.get(f"/api/v1/jobs/{second['job_id']}").json
    assert (record["phase"], record["queue_position"]) == ("waiting_for_gpu", 1)
    assert record["eta"]["start_in_s"] == pytest.approx(DEFAULT_COLD_START.total_s + 35, abs=1)
    assert record["waiting_reason"] is None

    launched = datetime.now(timezone.utc) - timedelta(seconds=60)
    check_saw(provisioned, settings, Instance("i-gpu", "running", launched_at=launched))
    record = client.get(f"/api/v1/jobs/{first['job_id']}").json
    assert (record["phase"], record["queue_position"]) == ("gpu_starting", 0)
    assert record["eta"]["start_in_s"] == pytest.approx(DEFAULT_COLD_START.total_s - 60, abs=2)

    HeartbeatStore(provisioned.aws.dynamodb, settings.control_table, ttl_s=HEARTBEAT_TTL_S, instance_arn=provisioned.aws.instance_arn).beat("i-gpu", [], True)
    listed = {job["job_id"]: job for job in client.get("/api/v1/jobs?status=queued").json["jobs"]}
    assert [(listed[j["job_id"]]["phase"], listed[j["job_id"]]["queue_position"],
             listed[j["job_id"]]["eta"]["start_in_s"]) for j in (first, second)] == [("queued", 0, 0.0),
                                                                                     ("queued", 1, 35.0)]


def test_no_eta_when_no_gpu_may_start_and_the_record_says_why(client, settings, provisioned):
    check_saw(provisioned, settings, Instance("i-gpu", "stopped"), blocked="monthly budget: $99.00 spent of $100.00")
    job = submit(client, settings)
    assert job["estimate"]["start_by"] is None
    record = client.get(f"/api/v1/jobs/{job['job_id']}").json
    assert (record["phase"], record["eta"]) == ("waiting_for_gpu", None)
    assert "monthly budget" in record["waiting_reason"]


def test_the_quote_follows_observed_jobs_and_the_end_shows_the_actual_beside_it(client, operator, settings,
                                                                              provisioned):
    jobs = provisioned.jobs
    for n, gpu_s in enumerate((10.0, 12.0, 50.0)):  # the median: 12 s
        jobs.create(f"old-{n}", "camera-angle", {"image": image(settings), "move": "top_down"}, source="api",
                    owner="alice")
        jobs.transition(f"old-{n}", states.RUNNING)
        jobs.transition(f"old-{n}", states.SUCCEEDED, outputs=[], gpu_seconds=gpu_s)
    HeartbeatStore(provisioned.aws.dynamodb, settings.control_table, ttl_s=HEARTBEAT_TTL_S, instance_arn=provisioned.aws.instance_arn).beat("i-gpu", [], True)
    check_saw(provisioned, settings, Instance("i-gpu", "running", launched_at=datetime.now(timezone.utc)))
    job = submit(client, settings)
    assert (job["estimate"]["gpu_seconds"], job["estimate"]["observed_jobs"], job["estimate"]["phase"]) == (
        12.0, 3, "queued")

    jobs.transition(job["job_id"], states.RUNNING)
    jobs.transition(job["job_id"], states.SUCCEEDED, outputs=[], gpu_seconds=15.0)
    record = client.get(f"/api/v1/jobs/{job['job_id']}").json
    assert record["estimate"]["gpu_seconds"] == 12.0
    assert (record["actual"]["gpu_seconds"], record["actual"]["usd"]) == (15.0, round(15 * ON_DEMAND_USD / 3600, 6))
    assert record["actual"]["finish_error_s"] < 0  # sooner than the estimate, which allowed the default overhead
    assert (record["phase"], record["eta"]) == (None, None)

    report = operator.get("/api/v1/costs").json["estimates"]
    assert (report["jobs"], report["gpu_seconds_error_pct"], report["finished_by_estimate"]) == (1, 20.0, 1.0)


def test_with_no_gpu_running_the_quote_is_at_what_the_next_start_would_pay(client, settings, provisioned):
    spot = Instance("i-spot", "stopped", market=SPOT)
    check_saw(provisioned, settings, spot, Instance("i-od", "stopped"), market={
        "last_start": None, "last_fallback": None,
        "next_start": {"instance_id": "i-spot", "instance_type": G6E_2XLARGE, "market": SPOT, "hourly_usd": 0.75}})
    quote = submit(client, settings)["estimate"]
    assert (quote["phase"], quote["hourly_usd"]) == ("waiting_for_gpu", 0.75)
    assert quote["usd_cold"] == pytest.approx((DEFAULT_COLD_START.billed_s + 30) * 0.75 / 3600, abs=1e-6)


def test_an_interrupted_spot_instance_serves_no_job_and_the_quote_is_at_the_spot_price(client, settings, provisioned):
    db, table = provisioned.aws.dynamodb, settings.control_table
    launched = datetime.now(timezone.utc) - timedelta(minutes=10)
    spot = Instance("i-spot", "running", launched_at=launched, market=SPOT)
    RunLog(db, table).reconcile([spot], spot_prices={"i-spot": 0.9})
    beats = HeartbeatStore(db, table, ttl_s=HEARTBEAT_TTL_S, instance_arn=provisioned.aws.instance_arn)
    beats.beat("i-spot", [], True)
    check_saw(provisioned, settings, spot)
    job = submit(client, settings)
    assert (job["estimate"]["phase"], job["estimate"]["hourly_usd"]) == ("queued", 0.9)

    # The notice came: its worker takes no job, and the lifecycle starts an on-demand replacement.
    beats.beat("i-spot", [], True, interruption_at=datetime.now(timezone.utc) + timedelta(minutes=2))
    check_saw(provisioned, settings, spot, Instance("i-od", "pending", launched_at=datetime.now(timezone.utc)))
    record = client.get(f"/api/v1/jobs/{job['job_id']}").json
    assert (record["phase"], record["queue_position"]) == ("gpu_starting", 0)
    assert record["eta"]["start_in_s"] == pytest.approx(DEFAULT_COLD_START.total_s, abs=2)


def test_a_running_job_its_instance_gave_back_waits_for_the_next_one(client, settings, provisioned):
    job = submit(client, settings)
    long_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
    provisioned.jobs.transition(job["job_id"], states.RUNNING, started_at=long_ago.isoformat())
    beats = HeartbeatStore(provisioned.aws.dynamodb, settings.control_table, ttl_s=HEARTBEAT_TTL_S, instance_arn=provisioned.aws.instance_arn)
    beats.beat("i-gpu", [job["job_id"]], True)
    check_saw(provisioned, settings, Instance("i-gpu", "running", launched_at=long_ago))
    record = client.get(f"/api/v1/jobs/{job['job_id']}").json
    assert (record["status"], record["phase"]) == ("running", "running")

    # Its spot instance was interrupted and gave it back; a replacement starts. The record still says running.
    beats.beat("i-gpu", [], True, interruption_at=datetime.now(timezone.utc))
    check_saw(provisioned, settings, Instance("i-gpu", "running", launched_at=long_ago),
              Instance("i-od", "pending", launched_at=datetime.now(timezone.utc)))
    record = client.get(f"/api/v1/jobs/{job['job_id']}").json
    assert (record["status"], record["phase"], record["queue_position"]) == ("running", "gpu_starting", 0)
    assert record["eta"]["start_in_s"] == pytest.approx(DEFAULT_COLD_START.total_s, abs=2)


def stream_events(answer):
    """The (event, data) pairs of a Server-Sent Events answer as the server sends them, comments left out."""
    for chunk in answer.response:
        for block in chunk.decode().split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if lines:
                yield lines["event"], json.loads(lines["data"])


def test_the_event_stream_tells_a_waiting_job_s_moves_as_the_gpu_starts(client, settings, provisioned, monkeypatch):
    monkeypatch.setattr(events, "PLACE_CHECK_S", 0.1)
    check_saw(provisioned, settings, Instance("i-gpu", "stopped"))
    job_id = submit(client, settings)["job_id"]
    answer = client.get(f"/api/v1/jobs/{job_id}/events", buffered=False)
    stream = stream_events(answer)

    def next_status() -> dict:
        name, data = next(stream)
        assert name == "status", (name, data)
        return data

    # Nothing of the record changes while the GPU starts and becomes ready: the stream tells each move all the same.
    assert (next_status()["phase"]) == "waiting_for_gpu"
    check_saw(provisioned, settings, Instance("i-gpu", "pending", launched_at=datetime.now(timezone.utc)))
    starting = next_status()
    assert (starting["status"], starting["phase"], starting["queue_position"]) == ("queued", "gpu_starting", 0)
    HeartbeatStore(provisioned.aws.dynamodb, settings.control_table, ttl_s=HEARTBEAT_TTL_S, instance_arn=provisioned.aws.instance_arn).beat("i-gpu", [], True)
    check_saw(provisioned, settings, Instance("i-gpu", "running", launched_at=datetime.now(timezone.utc)))
    assert next_status()["phase"] == "queued"

    provisioned.jobs.transition(job_id, states.RUNNING)
    running = next_status()
    assert (running["status"], running["phase"]) == ("running", "running")
    provisioned.jobs.transition(job_id, states.CANCELLED)
    rest = [(name, data["status"]) for name, data in stream]
    answer.close()
    assert rest == [("status", "cancelled"), ("end", "cancelled")]
