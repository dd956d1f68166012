"""Cancel on real processes: a running job is interrupted in ComfyUI, a queued one never runs."""

from __future__ import annotations

import requests

from tests.integration.conftest import wait_for


def submit(stack, move="top_down") -> str:
    answer = requests.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": stack.image_uri, "move": move}, timeout=10
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def cancel(stack, job_id) -> requests.Response:
    return requests.post(f"{stack.api_url}/api/v1/jobs/{job_id}/cancel", timeout=10)


def comfyui_history(stack) -> dict:
    return requests.get(f"{stack.comfyui_url}/history", timeout=10).json()


def test_running_job_is_interrupted_and_a_queued_one_never_runs(make_stack):
    stack = make_stack(step_seconds=0.5, worker_env={"GPUORCH_COMFYUI_CHECK_INTERVAL": "0.3"})
    running, queued = submit(stack), submit(stack, move="wide_angle")
    wait_for(lambda: stack.job(running)["progress"] > 0, 60, message="the first job to run")

    assert cancel(stack, queued).status_code == 200
    assert cancel(stack, running).json()["status"] == "cancelled"

    entry = wait_for(lambda: comfyui_history(stack).get(running), 30, message="ComfyUI to stop the prompt")
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    # The worker then takes the queued job, sees it cancelled and acknowledges it without running it.
    wait_for(lambda: stack.services.aws.sqs.get_queue_attributes(
        QueueUrl=stack.services.aws.queue_url(stack.settings.gpu_queue),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"},
        60, message="both messages to be acknowledged")
    assert list(comfyui_history(stack)) == [running]
    for job_id in (running, queued):
        record = stack.job(job_id)
        assert record["status"] == "cancelled" and record["outputs"] == []
    assert "Contents" not in stack.services.aws.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix="results/")
    assert cancel(stack, running).status_code == 409
