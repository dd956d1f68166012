"""The GPU worker against a misbehaving ComfyUI, on real processes: one emulator fault per test.

Each fault is armed over the emulator's HTTP control routes once the worker is ready (so its warm-up
prompt is never the one hit), and each test checks what the fault did on the emulator's side (where it
fired, how often the prompt ran and how each run ended) as well as the job's record and its S3 outputs.
The tests share one stack, healed and checked idle between them, except the hang test, which needs a
short task time limit. A redelivered job finding its own prompt is covered by the SIGKILL test in
test_failures.py.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import start_stack, wait_for

FAST_CHECKS = {"GPUORCH_COMFYUI_CHECK_INTERVAL": "0.3"}
RETRIES = 4
TERMINAL = ("succeeded", "failed", "cancelled")
SAMPLER = "KSampler"


@pytest.fixture(scope="module")
def shared_stack(moto_endpoint, tmp_path_factory):
    # One heartbeat, at start: its probe of ComfyUI would add to the refused requests some tests count exactly.
    running = start_stack(tmp_path_factory.mktemp("faults"), moto_endpoint, step_seconds=0.1,
                          worker_env={**FAST_CHECKS, "GPUORCH_COMFYUI_RETRIES": str(RETRIES),
                                      "GPUORCH_HEARTBEAT_SECONDS": "3600"})
    try:
        running.wait_worker_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
def comfy(shared_stack):
    """The shared stack, idle and with no fault armed or outage in force; healed again afterwards."""
    shared_stack.clear_faults()
    wait_for(shared_stack.gpu_queue_empty, 30, message="the GPU queue to be empty")
    wait_for(lambda: shared_stack.comfyui("/queue") == {"queue_running": [], "queue_pending": []}, 30,
             message="ComfyUI to be idle")
    yield shared_stack
    shared_stack.clear_faults()


def submit(stack, move: str = "top_down") -> str:
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": stack.image_uri, "move": move}, timeout=10
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]




def assert_settled_once(stack, job_id: str, status: str) -> dict:
    """The job ended in `status` and only there: its message is acknowledged (nothing can run it again), it
    ran once, the status index lists it under that one terminal status, and S3 holds outputs only for a
    success (exactly the files its record names)."""
    wait_for(stack.gpu_queue_empty, 30, message=f"job {job_id}'s message to be acknowledged")
    record = stack.job(job_id)
    assert record["status"] == status, record
    assert record["attempts"] == 1 and record["finished_at"], record
    listed_under = [
        state for state in TERMINAL
        if job_id in {job["job_id"] for job in stack.session.get(
            f"{stack.api_url}/api/v1/jobs", params={"status": state, "limit": 100}, timeout=10).json()["jobs"]}
    ]
    assert listed_under == [status], f"job {job_id} is listed as {listed_under}"
    listing = stack.services.aws.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=f"results/{job_id}/")
    stored = sorted(obj["Key"].rsplit("/", 1)[-1] for obj in listing.get("Contents", []))
    if status == "succeeded":
        assert stored and stored == sorted(output["filename"] for output in record["outputs"]), (stored, record)
    else:
        assert stored == [] and record["outputs"] == [], (stored, record)
    return record


def assert_progress_forward_to_100(seen: list) -> None:
    """Progress as the record showed it while the test polled: never backwards, and 100 at the end."""
    progress = [percent for _, percent in seen]
    assert progress == sorted(progress) and progress[-1] == 100, seen


def prompt_record(stack, job_id: str) -> dict:
    """How often the emulator queued and ran the job's prompt, and how each run ended."""
    return stack.comfyui_stats()["prompts"].get(job_id, {"queued": 0, "executed": 0, "outcomes": []})


def fired_in(stack, fault: dict, job_id: str) -> dict:
    """The one firing of `fault`, which must have hit the job's own prompt."""
    [fired] = stack.faults_fired(fault["id"])
    assert fired["prompt_id"] == job_id and fired["node_class"] == SAMPLER, fired
    return fired


def test_dropped_websocket_mid_run_the_job_still_succeeds_once(comfy):
    stack = comfy
    sockets_before = stack.comfyui_stats()["websocket_connections_total"]
    # Cut without a close frame at the sampler's third step of eight; the prompt runs on.
    fault = stack.arm_fault(kind="drop_websockets", at_node_class=SAMPLER, at_step=3, abrupt=True)

    job_id = submit(stack)
    seen: list = []
    record = stack.wait_terminal(job_id, timeout=60, seen=seen)

    assert record["status"] == "succeeded", record
    assert_progress_forward_to_100(seen)
    fired_in(stack, fault, job_id)
    assert prompt_record(stack, job_id) == {"queued": 1, "executed": 1, "outcomes": ["succeeded"]}
    assert stack.comfyui_stats()["websocket_connections_total"] > sockets_before, "the worker never used a websocket"
    assert_settled_once(stack, job_id, "succeeded")


def test_restart_that_loses_the_prompt_resubmits_it_once_under_the_same_id(comfy):
    stack = comfy
    before = stack.comfyui_stats()
    # The restart forgets queue, history and the running prompt, and cuts the next request as a booting server would.
    fault = stack.arm_fault(kind="restart", at_node_class=SAMPLER, at_step=2, for_requests=1)

    job_id = submit(stack)
    seen: list = []
    record = stack.wait_terminal(job_id, timeout=60, seen=seen)

    assert record["status"] == "succeeded", record
    assert_progress_forward_to_100(seen)
    fired_in(stack, fault, job_id)
    stats = stack.comfyui_stats()
    assert stats["restarts"] - before["restarts"] == 1
    assert stats["requests_refused"] - before["requests_refused"] == 1
    # Queued twice under the job's id; the first run abandoned by the restart, the second completed.
    assert stats["prompts"][job_id] == {"queued": 2, "executed": 2, "outcomes": ["abandoned", "succeeded"]}
    assert stack.comfyui(f"/history/{job_id}")[job_id]["status"]["status_str"] == "success"
    assert_settled_once(stack, job_id, "succeeded")


def test_hung_prompt_times_out_is_interrupted_and_fails_the_job(make_stack):
    # Soft limit 20 - 15 = 5 s; visibility 70 s = 2 x 20 s + 30 s, the worker's start-up rule.
    stack = make_stack(step_seconds=0.05, worker_env=FAST_CHECKS, task_time_limit=20, visibility_timeout=70)
    stack.wait_worker_ready()
    fault = stack.arm_fault(kind="hang", at_node_class=SAMPLER, at_step=2)

    job_id = submit(stack)
    # The prompt is held at step 2: it stops progressing while the job is still running.
    wait_for(lambda: any(held["prompt_id"] == job_id for held in stack.comfyui("/emulator/faults")["holding"]), 30,
             message="the prompt to hang")
    assert stack.job(job_id)["status"] == "running"
    record = stack.wait_terminal(job_id, timeout=30)

    assert record["status"] == "failed", record
    assert "timed out" in record["error"] and "GPUORCH_TASK_TIME_LIMIT=20" in record["error"], record["error"]
    assert record["progress"] < 100
    fired_in(stack, fault, job_id)
    # The worker interrupted the prompt in ComfyUI: it ended interrupted in history and holds nothing now.
    entry = wait_for(lambda: stack.comfyui(f"/history/{job_id}").get(job_id), 10, message="the prompt to end")
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert stack.comfyui("/emulator/faults")["holding"] == []
    assert prompt_record(stack, job_id) == {"queued": 1, "executed": 1, "outcomes": ["interrupted"]}
    assert_settled_once(stack, job_id, "failed")


def test_execution_error_fails_the_job_naming_the_exception_and_the_node(comfy):
    stack = comfy
    fault = stack.arm_fault(kind="execution_error", at_node_class=SAMPLER,
                            exception_type="torch.OutOfMemoryError", exception_message="Allocation on device")

    job_id = submit(stack)
    record = stack.wait_terminal(job_id, timeout=60)

    assert record["status"] == "failed", record
    fired = fired_in(stack, fault, job_id)
    # ComfyUI's own report of the failure, as its history keeps it.
    event, report = stack.comfyui(f"/history/{job_id}")[job_id]["status"]["messages"][-1]
    assert event == "execution_error"
    assert (report["node_id"], report["node_type"]) == (fired["node_id"], SAMPLER)
    error = record["error"]
    assert "torch.OutOfMemoryError" in error and "Allocation on device" in error, error
    assert f"node {report['node_id']} ({SAMPLER})" in error, error
    # Not retried: a node's exception would fail again.
    assert prompt_record(stack, job_id) == {"queued": 1, "executed": 1, "outcomes": ["failed"]}
    assert_settled_once(stack, job_id, "failed")


def retry_waits(stack, log_offset: int) -> list[float]:
    """The backoff waits the worker logged, past `log_offset` of its log, while ComfyUI refused it."""
    with open(stack.worker.log_path, "rb") as log:
        log.seek(log_offset)
        text = log.read().decode(errors="replace")
    return [float(wait) for wait in re.findall(r"Retrying \S+ in ([\d.]+) seconds as it raised ComfyUnavailable", text)]


def test_comfyui_unavailable_briefly_at_submission_is_retried_with_backoff(comfy):
    stack = comfy
    before, log_offset = stack.comfyui_stats(), stack.worker.log_path.stat().st_size
    # The next three requests are refused (503), whenever the job gets to ComfyUI; the fourth is served.
    stack.arm_fault(kind="unavailable", for_requests=RETRIES - 1, refuse_with="503")

    job_id = submit(stack)
    record = stack.wait_terminal(job_id, timeout=60)

    assert record["status"] == "succeeded", record
    stats = stack.comfyui_stats()
    assert stats["requests_refused"] - before["requests_refused"] == RETRIES - 1
    assert stats["prompts"][job_id] == {"queued": 1, "executed": 1, "outcomes": ["succeeded"]}
    waits = retry_waits(stack, log_offset)
    assert len(waits) == RETRIES - 1 and waits == sorted(waits) and waits[0] < waits[-1], waits
    assert_settled_once(stack, job_id, "succeeded")


def test_comfyui_unavailable_longer_than_the_retries_fails_the_job_as_unreachable(comfy):
    stack = comfy
    before, log_offset = stack.comfyui_stats(), stack.worker.log_path.stat().st_size
    # Connections cut without an answer, for far longer than the attempts with backoff take.
    stack.arm_fault(kind="unavailable", for_s=120, refuse_with="close")

    job_id = submit(stack)
    record = stack.wait_terminal(job_id, timeout=60)

    assert record["status"] == "failed", record
    assert f"ComfyUI unreachable at {stack.comfyui_url}" in record["error"], record["error"]
    # Exactly GPUORCH_COMFYUI_RETRIES attempts, backing off between them, then the worker gave up.
    assert stack.comfyui_stats()["requests_refused"] - before["requests_refused"] == RETRIES
    waits = retry_waits(stack, log_offset)
    assert len(waits) == RETRIES - 1 and waits == sorted(waits) and waits[0] < waits[-1], waits
    stack.clear_faults()
    assert prompt_record(stack, job_id)["queued"] == 0
    assert_settled_once(stack, job_id, "failed")
