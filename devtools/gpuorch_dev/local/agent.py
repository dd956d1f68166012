"""The local GPU host: when the (moto) GPU instance runs, start ComfyUI and the GPU worker; when it stops, stop them."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from pathlib import Path

from gpuorch_dev.local.stack import LocalStack, Process

log = logging.getLogger(__name__)


def host_should_run(state: str, running_since: float | None, now: float, boot_delay_s: float) -> bool:
    """Pure: the host's processes run once the instance has been `running` for the boot delay."""
    return state == "running" and running_since is not None and now - running_since >= boot_delay_s


class GpuHostAgent(threading.Thread):
    """Watches one EC2 instance and plays its boot and shutdown with local processes.

    On AWS the instance's own systemd starts ComfyUI and the GPU worker at boot and stops them at
    shutdown; on the local stack this agent does it, after `boot_delay_s` to stand for the boot.
    """

    def __init__(self, ec2, instance_id: str, start_host: Callable[[], list[Process]], *,
                 boot_delay_s: float, poll_s: float = 0.25, clock: Callable[[], float] = time.monotonic):
        super().__init__(name=f"gpu-host-{instance_id}", daemon=True)
        self.ec2, self.instance_id, self.start_host = ec2, instance_id, start_host
        self.boot_delay_s, self.poll_s, self.clock = boot_delay_s, poll_s, clock
        self.processes: list[Process] = []
        self.running_since: float | None = None
        self.boots = 0
        self.halt = threading.Event()

    def state(self) -> str:
        reservations = self.ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"]
        return reservations[0]["Instances"][0]["State"]["Name"]

    def step(self) -> None:
        state, now = self.state(), self.clock()
        if state == "running":
            self.running_since = self.running_since if self.running_since is not None else now
        else:
            self.running_since = None
        should_run = host_should_run(state, self.running_since, now, self.boot_delay_s)
        if should_run and not self.processes:
            self.boots += 1
            log.info("GPU instance %s booted: starting ComfyUI and the GPU worker", self.instance_id)
            self.processes = self.start_host()
        elif not should_run and self.processes and state != "running":
            log.info("GPU instance %s is %s: stopping its processes", self.instance_id, state)
            self.stop_host()

    def stop_host(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes = []

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a failed look at EC2 is retried at the next poll
                log.exception("GPU host agent: could not check the instance")
            self.halt.wait(self.poll_s)

    def shutdown(self) -> None:
        self.halt.set()
        self.join(timeout=10)
        self.stop_host()


def local_gpu_host(stack: LocalStack, *, instance_id: str, comfyui_port: int, data_dir: Path,
                   model_files: dict[str, list[str]], step_seconds: float) -> Callable[[], list[Process]]:
    """What the GPU instance runs at boot, locally: the ComfyUI emulator, then the Procfile's gpu_worker."""

    def start() -> list[Process]:
        _url, comfyui = stack.start_emulator_process(data_dir, model_files, step_seconds, port=comfyui_port)
        [worker] = stack.start_procfile(["gpu_worker"], {"GPUORCH_INSTANCE_ID": instance_id})
        return [comfyui, worker]

    return start
