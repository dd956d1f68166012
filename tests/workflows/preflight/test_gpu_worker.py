"""The GPU worker refuses to start when a workflow template cannot run on the live ComfyUI, says whether each
problem may pass by itself, waits a while for those that may, and records the refusal for the lifecycle."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from gpuorch.services import Services
from gpuorch.settings import Settings, settings_env
from gpuorch_dev.emulator import EmulatorConfig, start_in_thread
from lifecycle.live.refusals import RefusalStore
from tests.conftest import free_port, wait_for
from tests.workflows.preflight.conftest import NO_CAMERA_LORA, REPO, held
from workers.checks import Problem, template_findings, template_problems
from workers.gpu import REFUSED


def test_templates_pass_on_a_server_with_the_configured_models(comfyui):
    server = comfyui(held())

    assert template_problems(Services(Settings(comfyui_url=server.url))) == []


def test_a_model_file_the_server_lacks_is_a_problem_that_may_pass(comfyui):
    server = comfyui(held("camera_lora"))

    assert template_problems(Services(Settings(comfyui_url=server.url))) == [NO_CAMERA_LORA]
    problems, catalogue = template_findings(Services(Settings(comfyui_url=server.url)))
    assert problems == [Problem(NO_CAMERA_LORA, may_pass=True)] and catalogue.models_known  # it may still arrive


def test_a_server_that_stopped_answering_is_a_problem_that_may_pass():
    url = f"http://127.0.0.1:{free_port()}"

    [problem], catalogue = template_findings(Services(Settings(comfyui_url=url)))

    assert problem.reason.startswith(f"cannot reach ComfyUI at {url}") and problem.may_pass and catalogue is None


def test_a_broken_workflow_folder_is_a_problem_that_cannot_pass(comfyui, tmp_path):
    server = comfyui(held())
    (tmp_path / "workflows" / "broken").mkdir(parents=True)

    [problem], _ = template_findings(Services(Settings(comfyui_url=server.url,
                                                       workflows_dir=str(tmp_path / "workflows"))))

    assert "broken" in problem.reason and "graph.json: file not found" in problem.reason and not problem.may_pass


def test_the_worker_process_records_its_refusal_and_exits_2_naming_the_missing_model(provisioned, settings, comfyui):
    server = comfyui(held("camera_lora"))
    worker_settings = dataclasses.replace(settings, comfyui_url=server.url, comfyui_ready_timeout=10.0,
                                          startup_retry_seconds=0)
    env = {**os.environ, **settings_env(worker_settings)}

    done = subprocess.run(
        [sys.executable, "-m", "workers.gpu"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == REFUSED == 2, done.stderr
    assert f"refusing to start: {NO_CAMERA_LORA}" in done.stderr
    assert "consuming" not in done.stderr
    [stored] = RefusalStore(provisioned.aws.dynamodb, settings.control_table,
                             instance_arn=provisioned.aws.instance_arn).all()
    assert (stored.refusal.instance_id, stored.refusal.reasons) == (settings.instance_id, (NO_CAMERA_LORA,))
    assert set(stored.checked) == {"queue_visibility_timeout", "catalogue", "gpuorch", "settings", "workflows"}


def test_a_model_file_that_arrives_within_the_retry_time_lets_the_worker_start(provisioned, settings, tmp_path):
    port = free_port()
    running = [start_in_thread(EmulatorConfig(data_dir=tmp_path / "before", port=port,
                                              model_files=held("camera_lora")))]
    worker_settings = dataclasses.replace(settings, comfyui_url=running[0].url, comfyui_ready_timeout=10.0,
                                          startup_retry_seconds=120, warmup_workflow="", gpu_metrics_port=0)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "workers.gpu"], cwd=REPO, stdout=log, stderr=log,
                                  env={**os.environ, **settings_env(worker_settings)})
    try:
        wait_for(lambda: "this may pass by itself" in log_path.read_text(), 60, message="the worker to wait")
        running.pop().stop()  # ComfyUI restarts with the file synced meanwhile
        running.append(start_in_thread(EmulatorConfig(data_dir=tmp_path / "after", port=port, model_files=held())))
        wait_for(lambda: "GPU worker ready" in log_path.read_text() or worker.poll() is not None, 90,
                 message="the worker to start")
        assert worker.poll() is None, log_path.read_text()
    finally:
        worker.terminate()
        worker.wait(60)
        for emulator in running:
            emulator.stop()
    assert RefusalStore(provisioned.aws.dynamodb, settings.control_table,
                             instance_arn=provisioned.aws.instance_arn).all() == ()
