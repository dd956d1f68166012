"""Failure paths on real processes: a ComfyUI validation error, and a worker killed mid-job."""

from __future__ import annotations

import signal

import requests

from tests.integration.conftest import wait_for
from tests.support.held_messages import HeldMessages, task_id
from tests.support.model_files import builtin_file, builtin_folders


def test_comfyui_validation_error_fails_the_job_naming_the_node(make_stack):
    stack = make_stack(step_seconds=0.05)
    wait_for(lambda: "GPU worker ready" in stack.worker.tail(), 60, message="the GPU worker to be ready")
    # ComfyUI comes back from a restart without the camera LoRA: the worker checked at start, ComfyUI refuses now.
    stack.restart_comfyui(builtin_folders("camera_lora", names=stack.settings.models))
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": stack.image_uri, "move": "top_down"}, timeout=10
    )
    assert answer.status_code == 202, answer.text

    record = stack.wait_terminal(answer.json()["job_id"])

    assert record["status"] == "failed"
    assert "LoraLoaderModelOnly" in record["error"] and "lora_name" in record["error"]
    assert builtin_file("camera_lora", stack.settings.models) in record["error"]
    assert record["outputs"] == []


def test_worker_killed_mid_job_is_redelivered_and_the_job_runs_once(aws_proxy, make_stack):
    # The processes reach AWS through the proxy, which sees the receipt handles the worker is given.
    held = HeldMessages()
    aws_proxy.observe(held.observe)
    stack = make_stack(step_seconds=0.4, aws_via=aws_proxy.url)
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": stack.image_uri, "move": "close_up"}, timeout=10
    )
    job_id = answer.json()["job_id"]
    wait_for(lambda: stack.job(job_id)["progress"] > 0, 60, message="the job to be running in ComfyUI")

    stack.worker.signal_group(signal.SIGKILL)  # the whole worker, as when its instance dies
    stack.worker.popen.wait()
    # Acknowledged late: the dead worker's message is still in flight, and SQS would hand it back once the
    # queue's visibility timeout ran out; ChangeMessageVisibility hands it back now.
    released = held.release(stack.services.aws.sqs, stack.settings.gpu_queue)
    assert [task_id(body) for body in released.values()] == [job_id]
    stack.worker = stack.start_worker()

    record = stack.wait_terminal(job_id, timeout=120)
    assert record["status"] == "succeeded", record
    assert record["attempts"] == 2
    stats = requests.get(f"{stack.comfyui_url}/emulator/stats", timeout=10).json()
    assert stats["prompts"][job_id]["executed"] == 1, "ComfyUI ran the prompt more than once"
    keys = stack.services.aws.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=f"results/{job_id}/")
    assert [o["Key"].rsplit("/", 1)[-1] for o in keys["Contents"]] == [o["filename"] for o in record["outputs"]]
