"""Priorities and deadlines on real processes: a GPU worker drains the normal queue before the low-priority one, and a
job received past its deadline expires there, never run."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.integration.conftest import wait_for


def submit(stack, **options) -> str:
    answer = stack.session.post(f"{stack.api_url}/api/v1/camera-angle/jobs",
                                json={"image": stack.image_uri, "move": "close_up", **options}, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def test_the_gpu_worker_runs_the_normal_jobs_before_the_low_priority_ones(make_stack):
    # No GPU worker yet: both queues fill first, as they do while a GPU boots.
    stack = make_stack(step_seconds=0.05, run=())
    low = [submit(stack, priority="low") for _ in range(3)]
    normal = [submit(stack) for _ in range(3)]
    assert stack.job(low[0])["waiting_reason"].startswith("priority low: it starts no GPU by itself")

    stack.processes.start_procfile(["gpu_worker"])
    records = {job_id: stack.wait_terminal(job_id, timeout=120) for job_id in low + normal}

    assert {r["status"] for r in records.values()} == {"succeeded"}, records
    assert {r["priority"] for r in records.values() if r["job_id"] in low} == {"low"}
    last_normal = max(records[j]["started_at"] for j in normal)
    first_low = min(records[j]["started_at"] for j in low)
    assert last_normal <= first_low, records


def test_a_job_received_after_its_deadline_expires_and_never_runs(make_stack):
    stack = make_stack(step_seconds=0.05, run=())
    late = submit(stack, ttl_seconds=1)
    on_time = submit(stack, ttl_seconds=3600)
    wait_for(lambda: past(stack.job(late)["deadline"]), 10, message="the deadline to pass")

    stack.processes.start_procfile(["gpu_worker"])
    expired, done = stack.wait_terminal(late, timeout=90), stack.wait_terminal(on_time, timeout=90)

    assert (expired["status"], expired["attempts"], expired["started_at"], expired["outputs"]) == (
        "expired", 0, None, [])
    assert expired["error"].startswith("not started by its deadline")
    assert done["status"] == "succeeded"
    # It never reached ComfyUI: one prompt ran (the worker's warm-up aside), the on-time job's.
    history = stack.comfyui("/history")
    assert late not in history and on_time in history


def past(moment: str) -> bool:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")) < datetime.now(timezone.utc)
