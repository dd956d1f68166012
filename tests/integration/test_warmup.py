"""Warm-up: the GPU worker runs one workflow before it reports ready, and refuses a warm-up it cannot run."""

from __future__ import annotations

import requests

from tests.integration.conftest import wait_for


def test_worker_warms_up_before_it_is_ready(make_stack):
    stack = make_stack(step_seconds=0.05)
    log = wait_for(lambda: "GPU worker ready" in (text := stack.worker.tail(200)) and text, 60,
                   message="the GPU worker to be ready")
    assert log.index("warm-up with qwen-image-edit done") < log.index("GPU worker ready")
    stats = requests.get(f"{stack.comfyui_url}/emulator/stats", timeout=10).json()
    assert stats["prompts_succeeded"] == 1  # the warm-up prompt, before any job


def test_worker_refuses_an_unknown_warmup_workflow(make_stack):
    stack = make_stack(step_seconds=0.05, worker_env={"GPUORCH_WARMUP_WORKFLOW": "no-such-workflow"})
    assert stack.worker.popen.wait(timeout=60) == 2
    assert "GPUORCH_WARMUP_WORKFLOW names no workflow: 'no-such-workflow'" in stack.worker.tail()
