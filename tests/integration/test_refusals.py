"""A GPU that cannot serve is not paid for, with real processes: API, control worker and beat on the local stack, the
GPU instance on moto played by a local host agent. A worker that refuses to start gets its instance stopped and
held, /health and the queued job say why, and an operator's start releases it; an instance whose worker never
reports within the boot grace is stopped too."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gpuorch.provision import Provisioner
from gpuorch.services import Services
from gpuorch.settings import Settings, settings_env
from gpuorch_dev.local.agent import EmulatedComfyUi, GpuHostAgent, local_gpu_host
from gpuorch_dev.local.instances import create_local_instance
from gpuorch_dev.local.stack import LocalStack, Process, free_port
from gpuorch_dev.local.supervise import Unit
from lifecycle.live.check import StatusStore
from lifecycle.live.pool import InstancePool
from lifecycle.live.refusals import RefusalStore
from tests.integration.conftest import SAMPLE, key_session, unique_settings, wait_for
from tests.workflows.preflight.conftest import NO_CAMERA_LORA, held

# Checks and heartbeats every second; a refusal at the first failure (the missing file is not arriving).
FAST = {"lifecycle_check_seconds": 1, "heartbeat_seconds": 1, "dead_letter_sweep_seconds": 60,
        "startup_retry_seconds": 0}


@dataclass
class HeldGpu:
    settings: Settings
    services: Services
    processes: LocalStack
    control: Process
    comfyui_port: int
    instance_id: str
    agent: GpuHostAgent
    api_url: str
    session: requests.Session  # a user key's
    operator: requests.Session  # an operator key's

    def state(self) -> str:
        return InstancePool(self.services.aws.ec2, self.settings.gpu_pool).get(self.instance_id).state

    def submit(self) -> str:
        answer = self.session.post(f"{self.api_url}/api/v1/camera-angle/jobs", timeout=10, json={
            "image": f"s3://{self.settings.bucket}/inputs/house.png", "move": "top_down"})
        assert answer.status_code == 202, answer.text
        return answer.json()["job_id"]

    def job(self, job_id: str) -> dict:
        return self.session.get(f"{self.api_url}/api/v1/jobs/{job_id}", timeout=10).json()

    def host_health(self) -> tuple[str, dict]:
        component = requests.get(f"{self.api_url}/health", timeout=10).json()["components"]["gpu_instances"]
        [host] = [h for h in component["detail"]["instances"] if h["instance_id"] == self.instance_id]
        return component["status"], host

    def held(self) -> bool:
        status = StatusStore(self.services.aws.dynamodb, self.settings.control_table).read()
        return status is not None and self.instance_id in status.held

    def refusals(self, reason: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.settings.control_metrics_port}/metrics", timeout=10).text
        return next(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                    if sample.name == "gpuorch_lifecycle_refusals_total" and sample.labels == {"reason": reason})


def host_units(processes: LocalStack, instance_id: str, comfyui_port: int, data_dir: Path,
               model_files: dict[str, list[str]] | None) -> list[Unit]:
    """The GPU host's units: the emulator holding `model_files` and the worker; only the worker when None."""
    emulator = None if model_files is None else EmulatedComfyUi(comfyui_port, data_dir, model_files, 0.05)
    return local_gpu_host(processes, instance_id=instance_id, emulator=emulator)


@pytest.fixture
def held_gpu(moto_endpoint, tmp_path):
    """API, control worker and beat; one stopped GPU instance whose host holds the given model files (None: no
    ComfyUI at all)."""
    started: list[HeldGpu] = []

    def make(model_files: dict[str, list[str]] | None, **overrides) -> HeldGpu:
        comfyui_port = free_port()
        settings = dataclasses.replace(unique_settings(moto_endpoint, **{**FAST, **overrides}),
                                       comfyui_url=f"http://127.0.0.1:{comfyui_port}", control_metrics_port=free_port())
        services = Services(settings)
        Provisioner(services.aws, settings).run()
        services.aws.s3.upload_file(str(SAMPLE), settings.bucket, "inputs/house.png")
        instance_id = create_local_instance(services.aws.ec2, settings.gpu_pool)
        processes = LocalStack(run_dir=tmp_path / "stack", env=settings_env(settings))
        api_port = free_port()
        [api, control, _beat] = processes.start_procfile(
            ["api", "control_worker", "beat"], {"GPUORCH_API_BIND": f"127.0.0.1:{api_port}"})
        api_url = f"http://127.0.0.1:{api_port}"
        processes.wait_until_ready(api, lambda: requests.get(f"{api_url}/health", timeout=5).status_code == 200)
        units = host_units(processes, instance_id, comfyui_port, tmp_path / "comfyui", model_files)
        agent = GpuHostAgent(services.aws.ec2, instance_id, units, boot_delay_s=1.0)
        agent.start()
        started.append(HeldGpu(settings, services, processes, control, comfyui_port, instance_id, agent, api_url,
                               key_session(services), key_session(services, "ops", operator=True)))
        return started[-1]

    yield make
    for gpu in started:
        gpu.agent.shutdown()
        gpu.session.close()
        gpu.operator.close()
        gpu.processes.stop()


def test_a_worker_that_refuses_gets_its_instance_stopped_and_held_until_an_operator_starts_it(held_gpu, tmp_path):
    gpu = held_gpu(held("camera_lora"), health_boot_grace_seconds=300)
    job_id = gpu.submit()

    wait_for(lambda: gpu.agent.boots == 1, 30, message="the job to start the GPU")
    wait_for(lambda: gpu.state() == "stopped" and gpu.held(), 90, message="the refusing GPU to be stopped and held")

    wait_for(lambda: not gpu.agent.processes, 30, message="the host's processes to stop with the instance")
    assert f"refusing to start: {NO_CAMERA_LORA}" in (gpu.processes.run_dir / f"gpu_worker-{gpu.instance_id}.log").read_text()
    assert gpu.refusals("worker_refused") == 1
    assert "it cannot serve: its worker refused to start" in gpu.control.log_path.read_text()
    reason = gpu.job(job_id)["waiting_reason"]
    assert reason.startswith(f"the GPU instance {gpu.instance_id} cannot serve: its worker refused to start: "
                             f"{NO_CAMERA_LORA}"), reason
    status, host = gpu.host_health()
    assert (status, host["state"], host["health"]) == ("blocked", "stopped", "refused")
    assert NO_CAMERA_LORA in host["reason"] and host["refusal"]["fingerprint"]
    # The job still waits, and more checks run: none starts the held instance again.
    checked = StatusStore(gpu.services.aws.dynamodb, gpu.settings.control_table).read().checked_at
    wait_for(lambda: StatusStore(gpu.services.aws.dynamodb, gpu.settings.control_table).read().checked_at > checked,
             30, message="another lifecycle check")
    assert gpu.state() == "stopped" and gpu.agent.boots == 1 and gpu.job(job_id)["status"] == "queued"

    # The operator syncs the missing file onto the instance's volume, then starts it.
    gpu.agent.units = host_units(gpu.processes, gpu.instance_id, gpu.comfyui_port, tmp_path / "comfyui-fixed", held())
    started = gpu.operator.post(f"{gpu.api_url}/api/v1/gpu/{gpu.instance_id}/start", timeout=30)

    assert started.status_code == 200, started.text
    assert started.json()["released"].startswith(f"its worker refused to start: {NO_CAMERA_LORA}")
    record = wait_for(lambda: (r := gpu.job(job_id))["status"] in ("succeeded", "failed") and r, 120,
                      message="the job to run on the released GPU")
    assert record["status"] == "succeeded", record
    assert gpu.agent.boots == 2
    assert RefusalStore(gpu.services.aws.dynamodb, gpu.settings.control_table,
                        instance_arn=gpu.services.aws.instance_arn).all() == ()
    assert gpu.host_health()[1]["health"] == "ok"


def test_an_instance_whose_worker_never_reports_within_the_boot_grace_is_stopped_and_held(held_gpu):
    # No ComfyUI on the host: the worker waits for it (GPUORCH_COMFYUI_READY_TIMEOUT, 300 s) and never reports.
    gpu = held_gpu(None, health_boot_grace_seconds=20)
    job_id = gpu.submit()

    wait_for(lambda: gpu.agent.boots == 1, 30, message="the job to start the GPU")
    wait_for(lambda: gpu.state() == "stopped" and gpu.held(), 90, message="the silent GPU to be stopped and held")

    assert gpu.refusals("not_ready") == 1 and gpu.refusals("worker_refused") == 0
    [refusal] = RefusalStore(gpu.services.aws.dynamodb, gpu.settings.control_table,
                        instance_arn=gpu.services.aws.instance_arn).refusals()
    assert refusal.source == "lifecycle" and "not ready within its boot grace" in refusal.reasons[0]
    status, host = gpu.host_health()
    assert (status, host["health"]) == ("blocked", "refused") and "limit 20 s" in host["reason"]
    assert gpu.job(job_id)["waiting_reason"].startswith(f"the GPU instance {gpu.instance_id} cannot serve: not ready")
