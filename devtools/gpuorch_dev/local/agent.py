"""The local GPU host: when the (moto) GPU instance runs, start ComfyUI and the GPU worker; when it stops, stop them;
serve its instance metadata, and stop it when a spot interruption notice falls due, as EC2 does."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from gpuorch.clock import utc_now
from gpuorch_dev.local.metadata import LocalInstanceMetadata
from gpuorch_dev.local.stack import LocalStack, Process
from gpuorch_dev.local.supervise import ALWAYS, SupervisedProcess, Unit

log = logging.getLogger(__name__)

# The Restart= and RestartSec of the units on the GPU instance (configs/deploy/systemd/comfyui.service and
# gpuorch-gpu-worker.service; tests/devtools/test_supervise.py keeps them equal). Always: a GPU worker shut down
# from Flower (Celery's remote shutdown exits 0) comes back, as a crashed one does.
COMFYUI_RESTART, COMFYUI_RESTART_S = ALWAYS, 5.0
GPU_WORKER_RESTART, GPU_WORKER_RESTART_S = ALWAYS, 30.0
# gpuorch-gpu-worker.service's RestartPreventExitStatus: a refusal the worker recorded (workers.gpu.REFUSED) is
# not retried; the lifecycle stops the instance instead.
GPU_WORKER_NO_RESTART = frozenset({2})


def host_should_run(state: str, running_since: float | None, now: float, boot_delay_s: float) -> bool:
    """Pure: the host's processes run once the instance has been `running` for the boot delay."""
    return state == "running" and running_since is not None and now - running_since >= boot_delay_s


def interruption_due(notice_at: datetime | None, now: datetime) -> bool:
    """Pure: a spot interruption notice's time has come (EC2 stops the instance then)."""
    return notice_at is not None and now >= notice_at


class GpuHostAgent(threading.Thread):
    """Watches one EC2 instance and plays its boot and shutdown with local processes.

    On AWS the instance's own systemd starts ComfyUI and the GPU worker at boot, restarts either after it exits,
    and stops them at shutdown; on the local stack this agent does it, after `boot_delay_s` to stand for the boot.
    With `metadata` (the instance's metadata service, which it stops at shutdown) it also plays EC2's side of a
    spot interruption: at the notice's time it stops the instance, and a new boot starts without a notice.
    """

    def __init__(self, ec2, instance_id: str, units: list[Unit], *,
                 boot_delay_s: float, poll_s: float = 0.25, clock: Callable[[], float] = time.monotonic,
                 metadata: LocalInstanceMetadata | None = None, wall_clock: Callable[[], datetime] = utc_now):
        super().__init__(name=f"gpu-host-{instance_id}", daemon=True)
        self.ec2, self.instance_id, self.units = ec2, instance_id, units
        self.boot_delay_s, self.poll_s, self.clock = boot_delay_s, poll_s, clock
        self.metadata, self.wall_clock = metadata, wall_clock
        self.supervised: list[SupervisedProcess] = []
        self.running_since: float | None = None
        self.boots = 0
        self.halt = threading.Event()

    @property
    def processes(self) -> list[Process]:
        """The host's current processes (each unit's latest start), while the instance runs."""
        return [supervised.process for supervised in self.supervised]

    def state(self) -> str:
        reservations = self.ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"]
        return reservations[0]["Instances"][0]["State"]["Name"]

    def step(self) -> None:
        state, now = self.state(), self.clock()
        notice = self.metadata.notice if self.metadata is not None else None
        if state == "running" and interruption_due(notice.at if notice else None, self.wall_clock()):
            log.warning("GPU instance %s: spot interruption at %s: EC2 stops it", self.instance_id, notice.at)
            self.ec2.stop_instances(InstanceIds=[self.instance_id])
            state = self.state()
        if state == "running":
            self.running_since = self.running_since if self.running_since is not None else now
        else:
            self.running_since = None
        should_run = host_should_run(state, self.running_since, now, self.boot_delay_s)
        if should_run and not self.supervised:
            self.boots += 1
            if self.metadata is not None:
                self.metadata.clear_notice()  # a notice was about the run before this boot
            log.info("GPU instance %s booted: starting %s", self.instance_id, ", ".join(u.name for u in self.units))
            # In order, as systemd's After= orders them: ComfyUI answers before the GPU worker starts.
            for unit in self.units:
                self.supervised.append(SupervisedProcess(unit, self.clock))
        elif should_run:
            for supervised in self.supervised:
                supervised.check()
        elif self.supervised and state != "running":
            log.info("GPU instance %s is %s: stopping its processes", self.instance_id, state)
            self.stop_host()

    def stop_host(self) -> None:
        for supervised in reversed(self.supervised):
            supervised.stop()
        self.supervised = []

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a failed look at EC2 (or a failed boot) is tried again at the next poll
                log.exception("GPU host agent: could not check the instance")
            self.halt.wait(self.poll_s)

    def shutdown(self) -> None:
        self.halt.set()
        self.join(timeout=10)
        self.stop_host()
        if self.metadata is not None:
            self.metadata.stop()


@dataclass(frozen=True)
class EmulatedComfyUi:
    """The ComfyUI emulator a local GPU host runs: its port, data folder, model files and time per sampler step."""

    port: int
    data_dir: Path
    model_files: dict[str, list[str]]
    step_seconds: float


def local_gpu_host(stack: LocalStack, *, instance_id: str, emulator: EmulatedComfyUi | None,
                   metadata: LocalInstanceMetadata | None = None) -> list[Unit]:
    """What the GPU instance's systemd starts at boot, locally: ComfyUI (the emulator, the worker's ComfyUI; none when
    an existing ComfyUI serves, at the settings' GPUORCH_COMFYUI_URL), then the Procfile's gpu_worker, which asks
    `metadata` (the instance's own metadata service) whether it runs on spot and for an interruption notice."""
    worker_env = {"GPUORCH_INSTANCE_ID": instance_id}
    if emulator is not None:
        worker_env["GPUORCH_COMFYUI_URL"] = f"http://127.0.0.1:{emulator.port}"
    if metadata is not None:
        worker_env["GPUORCH_INSTANCE_METADATA_URL"] = metadata.url

    def start_worker() -> Process:
        [worker] = stack.start_procfile(["gpu_worker"], worker_env, label=instance_id)
        return worker

    units = [Unit("gpu_worker", start_worker, GPU_WORKER_RESTART_S, GPU_WORKER_NO_RESTART, GPU_WORKER_RESTART)]
    if emulator is None:
        return units

    def start_emulator() -> Process:
        return stack.start_emulator_process(emulator.data_dir, emulator.model_files, emulator.step_seconds,
                                            port=emulator.port, label=instance_id)[1]

    return [Unit("comfyui-emulator", start_emulator, COMFYUI_RESTART_S, restart=COMFYUI_RESTART), *units]


def local_gpu_instance(stack: LocalStack, ec2, *, instance_id: str, market: str, emulator: EmulatedComfyUi | None,
                       boot_delay_s: float) -> GpuHostAgent:
    """The agent of one local GPU instance, its metadata service serving: start() it to play the instance."""
    metadata = LocalInstanceMetadata(instance_id, market).start()
    return GpuHostAgent(ec2, instance_id, local_gpu_host(stack, instance_id=instance_id, emulator=emulator,
                                                         metadata=metadata),
                        boot_delay_s=boot_delay_s, metadata=metadata)
