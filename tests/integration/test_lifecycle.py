"""The GPU lifecycle with real processes: a job starts a stopped instance, an idle one stops, never under a job."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from gpuorch.aws.sqs import queue_depth
from gpuorch.provision import Provisioner
from gpuorch.celery.app import create_celery_app
from gpuorch_dev.local.agent import EmulatedComfyUi, GpuHostAgent, local_gpu_instance
from gpuorch_dev.local.stack import LocalStack, free_port
from gpuorch_dev.local.instances import create_local_instance
from gpuorch.services import Services
from gpuorch.settings import Settings, settings_env
from lifecycle.live.pool import InstancePool
from gpuorch.celery.names import CHECK_GPU
from tests.integration.conftest import SAMPLE, key_session, unique_settings, wait_for

FAST = {"lifecycle_check_seconds": 1, "heartbeat_seconds": 1, "dead_letter_sweep_seconds": 60}


@dataclass
class GpuLifecycle:
    settings: Settings
    services: Services
    processes: LocalStack
    pool: InstancePool
    agents: dict[str, GpuHostAgent]
    comfyui: dict[str, EmulatedComfyUi]  # each instance's own ComfyUI emulator
    api_url: str
    image_uri: str
    session: requests.Session  # a user key's

    def state(self, instance_id: str) -> str:
        return self.pool.get(instance_id).state

    def running(self) -> list[str]:
        return [i.instance_id for i in self.pool.describe() if i.state in ("pending", "running")]

    def submit(self, move: str = "top_down") -> str:
        answer = self.session.post(f"{self.api_url}/api/v1/camera-angle/jobs",
                               json={"image": self.image_uri, "move": move}, timeout=10)
        assert answer.status_code == 202, answer.text
        return answer.json()["job_id"]

    def job(self, job_id: str) -> dict:
        return self.session.get(f"{self.api_url}/api/v1/jobs/{job_id}", timeout=10).json()


@pytest.fixture
def gpu_lifecycle(moto_endpoint, tmp_path):
    """API, control worker and beat always on; GPU instances on moto (on-demand ones, or the `markets` given), each
    played by a local host agent with its own ComfyUI emulator and instance metadata service."""
    started: list[GpuLifecycle] = []

    def make(*, instances: int = 1, markets: tuple[str, ...] = (), step_seconds: float = 0.05, agents: bool = True,
             **overrides) -> GpuLifecycle:
        markets = markets or ("on-demand",) * instances
        settings = unique_settings(moto_endpoint, **{**FAST, **overrides})
        services = Services(settings)
        Provisioner(services.aws, settings).run()
        services.aws.s3.upload_file(str(SAMPLE), settings.bucket, "inputs/house.png")
        pool = InstancePool(services.aws.ec2, settings.gpu_pool)
        ids = [create_local_instance(services.aws.ec2, settings.gpu_pool, market=market) for market in markets]
        processes = LocalStack(run_dir=tmp_path / f"lifecycle{len(started)}", env=settings_env(settings))
        api_port = free_port()
        [api, _control, _beat] = processes.start_procfile(
            ["api", "control_worker", "beat"], {"GPUORCH_API_BIND": f"127.0.0.1:{api_port}"})
        api_url = f"http://127.0.0.1:{api_port}"
        processes.wait_until_ready(api, lambda: requests.get(f"{api_url}/health", timeout=5).status_code == 200)
        hosts, emulators = {}, {}
        if agents:
            for instance_id, market in zip(ids, markets):
                emulators[instance_id] = EmulatedComfyUi(free_port(), tmp_path / f"comfyui-{instance_id}",
                                                         settings.models.by_folder(), step_seconds)
                hosts[instance_id] = local_gpu_instance(processes, services.aws.ec2, instance_id=instance_id,
                                                        market=market, emulator=emulators[instance_id],
                                                        boot_delay_s=1.0)
                hosts[instance_id].start()
        started.append(GpuLifecycle(settings, services, processes, pool, hosts, emulators, api_url,
                                    f"s3://{settings.bucket}/inputs/house.png", key_session(services)))
        return started[-1]

    yield make
    for stack in started:
        for agent in stack.agents.values():
            agent.shutdown()
        stack.session.close()  # else the API's graceful stop waits out its keep-alive connection
        stack.processes.stop()


def test_a_job_starts_the_stopped_gpu_which_stops_once_idle(gpu_lifecycle):
    gpu = gpu_lifecycle(idle_stop_seconds=3)
    [instance_id] = gpu.agents
    assert gpu.state(instance_id) == "stopped"

    job_id = gpu.submit()

    wait_for(lambda: gpu.state(instance_id) == "running", 15, message="the submission to start the GPU")
    record = wait_for(lambda: (r := gpu.job(job_id))["status"] in ("succeeded", "failed") and r, 120,
                      message="the job to finish")
    assert record["status"] == "succeeded", record
    wait_for(lambda: gpu.state(instance_id) == "stopped", 60, message="the idle GPU to stop")
    agent = gpu.agents[instance_id]
    wait_for(lambda: not agent.processes, 30, message="the GPU host's processes to stop")
    assert agent.boots == 1


def test_a_job_longer_than_the_idle_time_is_never_stopped_under(gpu_lifecycle):
    # 8 sampler steps of 1 s: four times the idle time.
    gpu = gpu_lifecycle(idle_stop_seconds=2, step_seconds=1.0)
    [instance_id] = gpu.agents

    job_id = gpu.submit()

    record = wait_for(lambda: (r := gpu.job(job_id))["status"] in ("succeeded", "failed") and r, 120,
                      message="the job to finish")
    assert record["status"] == "succeeded" and record["attempts"] == 1, record
    assert gpu.agents[instance_id].boots == 1  # never stopped (and so never booted again) under the job
    wait_for(lambda: gpu.state(instance_id) == "stopped", 60, message="the idle GPU to stop afterwards")


def test_simultaneous_checks_start_one_instance(gpu_lifecycle):
    # Two stopped instances, room for two, work for one: ten checks at once must start exactly one.
    gpu = gpu_lifecycle(instances=2, max_instances=2, agents=False, lifecycle_check_seconds=3600)
    gpu.submit()
    # Through the control queue, to the control worker's four threads.
    sender = create_celery_app(gpu.settings)
    for _ in range(10):
        sender.send_task(CHECK_GPU)  # routed to the control queue, as every check is

    wait_for(lambda: gpu.running(), 30, message="a check to start an instance")
    aws = gpu.services.aws
    control_queue = aws.queue_url(gpu.settings.control_queue)
    wait_for(lambda: queue_depth(aws.sqs, control_queue).total == 0, 60, message="every check to run")
    assert len(gpu.running()) == 1
