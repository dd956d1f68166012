"""Cancel on real processes: a running job is interrupted, a queued one never runs, a pending one is dropped."""

from __future__ import annotations

import requests

from tests.integration.conftest import wait_for

FAST_CHECKS = {"GPUORCH_COMFYUI_CHECK_INTERVAL": "0.3"}


def submit(stack, move="top_down") -> str:
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": stack.image_uri, "move": move}, timeout=10
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def cancel(stack, job_id) -> requests.Response:
    return stack.session.post(f"{stack.api_url}/api/v1/jobs/{job_id}/cancel", timeout=10)


def comfyui(stack, path: str) -> dict:
    return requests.get(f"{stack.comfyui_url}{path}", timeout=10).json()




def assert_cancelled_without_outputs(stack, *job_ids) -> None:
    for job_id in job_ids:
        record = stack.job(job_id)
        assert record["status"] == "cancelled" and record["outputs"] == [], record
        listing = stack.services.aws.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=f"results/{job_id}/")
        assert "Contents" not in listing


def test_running_job_is_interrupted_and_a_queued_one_never_runs(make_stack):
    # One job in flight: the second stays a message on the GPU queue until the first is over.
    stack = make_stack(step_seconds=0.5, worker_env={**FAST_CHECKS, "GPUORCH_GPU_PIPELINE_DEPTH": "1"})
    jobs = {submit(stack), submit(stack, move="wide_angle")}
    # SQS does not keep order: whichever job the worker took first is the running one.
    running = wait_for(lambda: next((j for j in jobs if stack.job(j)["progress"] > 0), None), 60,
                       message="a job to run")
    [queued] = jobs - {running}

    assert cancel(stack, queued).status_code == 200
    assert cancel(stack, running).json()["status"] == "cancelled"

    entry = wait_for(lambda: comfyui(stack, "/history").get(running), 30, message="ComfyUI to stop the prompt")
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    # The worker takes the queued job, finds it cancelled, and acknowledges it without running it.
    wait_for(stack.gpu_queue_empty, 60, message="both messages to be acknowledged")
    assert comfyui(stack, "/emulator/stats")["prompts"].get(queued, {}).get("queued", 0) == 0
    assert_cancelled_without_outputs(stack, running, queued)
    assert cancel(stack, running).status_code == 409


def test_job_waiting_in_comfyui_queue_is_removed_from_it(make_stack):
    # Two jobs in flight: the second is already queued in ComfyUI behind the first.
    stack = make_stack(step_seconds=0.5, worker_env={**FAST_CHECKS, "GPUORCH_GPU_PIPELINE_DEPTH": "2"})
    jobs = {submit(stack), submit(stack, move="wide_angle")}
    second = wait_for(lambda: next((item[1] for item in comfyui(stack, "/queue")["queue_pending"] if item[1] in jobs),
                                   None), 60, message="a job to wait in ComfyUI's queue behind the other")
    [first] = jobs - {second}

    assert cancel(stack, second).status_code == 200

    wait_for(lambda: not any(item[1] == second for item in comfyui(stack, "/queue")["queue_pending"]), 10,
             message="the worker to drop the prompt from ComfyUI's queue")
    assert stack.wait_terminal(first)["status"] == "succeeded"
    wait_for(stack.gpu_queue_empty, 30, message="both messages to be acknowledged")
    assert comfyui(stack, "/emulator/stats")["prompts"][second]["executed"] == 0
    assert_cancelled_without_outputs(stack, second)
