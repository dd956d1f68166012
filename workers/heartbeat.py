"""The GPU worker's heartbeat: every few seconds, the jobs it is running (so the GPU is never stopped under them),
when ComfyUI last answered (for /health), and once its spot instance's interruption notice came, when EC2
interrupts it (so the lifecycle starts a replacement)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Callable

from celery.worker import state as worker_state

from gpuorch.comfyui.errors import ComfyError

log = logging.getLogger(__name__)


def running_job_ids() -> tuple[str, ...]:
    """The ids of the tasks this worker's pool is executing (kept by Celery in the main process)."""
    return tuple(sorted(request.id for request in list(worker_state.active_requests)))


def comfyui_answers(client) -> Callable[[], bool]:
    """A probe of ComfyUI for the heartbeat: True when its /queue answers (cheap, and busy or not it answers)."""

    def probe() -> bool:
        try:
            client.queue()
        except ComfyError as exc:
            log.warning("ComfyUI did not answer the heartbeat's probe: %s", exc)
            return False
        return True

    return probe


class Heartbeat(threading.Thread):
    """Reports (instance id, running jobs, ready, last time it had a job, last time ComfyUI answered) until
    stopped; a failed write is logged and retried at the next beat (a heartbeat that stays stale reads as busy,
    the safe side)."""

    def __init__(self, store, instance_id: str, interval_s: float,
                 running_jobs: Callable[[], tuple[str, ...]] = running_job_ids,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 comfyui_alive: Callable[[], bool] | None = None):
        super().__init__(name="gpuorch-heartbeat", daemon=True)
        self.store, self.instance_id, self.interval_s = store, instance_id, interval_s
        self.running_jobs, self.clock, self.comfyui_alive = running_jobs, clock, comfyui_alive
        self.last_busy_at: datetime | None = None
        self.comfyui_at: datetime | None = None
        self.interruption_at: datetime | None = None
        self.stopping = threading.Event()

    def beat(self, *, ready: bool = True) -> None:
        jobs = self.running_jobs() if ready else ()
        now = self.clock()
        if jobs or self.last_busy_at is None:
            # Idle time counts from the last moment a job ran here, or from the worker's start.
            self.last_busy_at = now
        if ready and self.comfyui_alive is not None and self.comfyui_alive():
            self.comfyui_at = now
        try:
            self.store.beat(self.instance_id, jobs, ready, self.last_busy_at, comfyui_at=self.comfyui_at,
                            interruption_at=self.interruption_at)
        except Exception as exc:  # noqa: BLE001 - the next beat retries; the worker goes on
            log.warning("heartbeat not recorded: %s", exc)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.beat()
            self.stopping.wait(self.interval_s)

    def interrupted(self, at: datetime) -> None:
        """Say from now on that EC2 interrupts this instance at `at`; said at once, not at the next beat."""
        self.interruption_at = at
        self.beat()

    def stop(self) -> None:
        """Stop beating and say this worker is no longer ready (its instance is shutting down)."""
        self.stopping.set()
        self.beat(ready=False)
