"""The GPU worker process: checks the queue, waits for ComfyUI, checks the templates on it, then consumes jobs; on a
spot instance it watches for EC2's interruption notice."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import time
from typing import Callable

from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown
from prometheus_client import REGISTRY, CollectorRegistry

from gpuorch.celery import names
from gpuorch.celery.app import create_celery_app
from gpuorch.celery.giveback import stop_consuming
from gpuorch.comfyui.client import ComfyClient
from gpuorch.comfyui.errors import ComfyError, ComfyUnavailable
from gpuorch.errors import UnknownWorkflow
from gpuorch.execution.interruption import Notice
from gpuorch.execution.warmup import warm_up
from gpuorch.logs import configure_logging
from gpuorch.celery.monitoring.worker import broadcast_flags
from gpuorch.services import Services
from gpuorch.settings import Settings
from lifecycle.live.heartbeats import HEARTBEAT_TTL_S, HeartbeatStore
from lifecycle.live.identity import IdentityError, instance_identity
from workers.checks import queue_visibility_timeout, template_problems, visibility_problems
from gpuorch.metrics.exposition import (enable_multiprocess, exposition_registry, mark_process_dead, metrics_folder,
                                        serve)
from gpuorch.metrics.jobs import BUSY_SECONDS, BusyShareCollector, counter_total
from workers.heartbeat import Heartbeat, comfyui_answers
from workers.spot_watch import SpotNoticeWatch, spot_metadata

log = logging.getLogger(__name__)

# Celery's consumer with a gate in front: a message that can never run goes to the dead-letter queue at once.
GPU_CONSUMER = "gpuorch.celery.gate:GatedConsumer"


def wait_for_comfyui(url: str, timeout_s: float, *, interval_s: float = 1.0) -> dict:
    """Poll ComfyUI's /system_stats until it answers or the deadline passes (then ComfyUnavailable)."""
    client = ComfyClient(url, client_id="gpuorch-startup", timeout=5)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.system_stats()
        except ComfyUnavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(interval_s)  # a server that is still booting; the deadline bounds the wait


def worker_argv(settings: Settings, *, loglevel: str = "INFO") -> list[str]:
    return [
        "worker",
        "--queues", settings.gpu_queue,
        # ComfyUI runs one prompt at a time; a second job in flight has its inputs fetched, uploaded and
        # queued in ComfyUI while the first runs, and the first's outputs upload while the second runs.
        "--concurrency", str(settings.gpu_pipeline_depth),
        "--pool", "prefork",  # a child process, so a job that kills it is given back, not lost
        "--hostname", "gpu@%h",
        *broadcast_flags(settings),
        "--loglevel", loglevel,
    ]


def prepare_metrics(settings: Settings) -> Callable[[], int | None]:
    """Before the pool forks: its children record into files the main process sums. Returns what serves
    /metrics (with the GPU's busy share) once the worker is ready; nothing when GPUORCH_GPU_METRICS_PORT is 0."""
    if not settings.gpu_metrics_port:
        return lambda: None
    folder = metrics_folder(settings.metrics_dir, "gpu_worker")
    enable_multiprocess(folder)
    if not settings.metrics_dir:
        # The temporary folder made for this run goes with the main process (a forked child's exit skips atexit).
        main_pid = os.getpid()
        atexit.register(lambda: os.getpid() == main_pid and shutil.rmtree(folder, ignore_errors=True))
    # A child that exits takes its live gauges with it; its counts stay in the sums.
    worker_process_shutdown.connect(lambda **_: mark_process_dead(os.getpid()), weak=False)

    def start() -> int | None:
        children = exposition_registry(CollectorRegistry())
        busy = BusyShareCollector(lambda: counter_total(children, BUSY_SECONDS), settings.gpu_busy_window_seconds)
        try:
            return serve(exposition_registry(REGISTRY, busy), settings.metrics_address, settings.gpu_metrics_port)
        except OSError as exc:
            # Jobs matter more than their figures: the worker goes on without /metrics.
            log.error("cannot serve metrics on %s:%d: %s", settings.metrics_address, settings.gpu_metrics_port, exc)
            return None

    return start


def refused(problems: list[str]) -> bool:
    """Log each problem that stops the worker from starting; True if there is any."""
    for problem in problems:
        log.error("refusing to start: %s", problem)
    return bool(problems)


def warmup_problems(services: Services) -> list[str]:
    """Run the warm-up workflow (models loaded before the first job); why it failed, if it did."""
    settings = services.settings
    comfy = ComfyClient(settings.comfyui_url, client_id="gpuorch-warmup", timeout=settings.comfyui_timeout)
    try:
        workflow = services.workflows.get(settings.warmup_workflow)
    except UnknownWorkflow:
        return [f"GPUORCH_WARMUP_WORKFLOW names no workflow: {settings.warmup_workflow!r}"]
    try:
        warm_up(comfy, workflow, settings.models, timeout=settings.comfyui_ready_timeout)
    except ComfyError as exc:
        return [f"warm-up with {workflow.name} failed: {type(exc).__name__}: {exc}"]
    return []


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, job_tasks=names.GPU_TASKS)
    try:
        # The heartbeat names the instance, so the lifecycle never stops it under a running job. First, before
        # any connection: off EC2 without an id, the refusal is the only thing the worker does.
        instance_id = instance_identity(settings.instance_id, settings.instance_metadata_url)
    except IdentityError as exc:
        return 2 if refused([str(exc)]) else 0
    spot = spot_metadata(settings)
    serve_metrics = prepare_metrics(settings)
    services = Services(settings)
    visibility = queue_visibility_timeout(services.aws.sqs, services.aws.queue_url(settings.gpu_queue))
    if refused(visibility_problems(visibility, settings.task_time_limit)):
        return 2
    configure_logging(settings.log_level, settings.log_format, instance_id,  # every line names the instance
                      job_tasks=names.GPU_TASKS)
    stats = wait_for_comfyui(settings.comfyui_url, settings.comfyui_ready_timeout)
    version = stats.get("system", {}).get("comfyui_version", "?")
    # A template the server cannot run would fail every job of its workflow: refuse before taking any.
    if refused(template_problems(services)):
        return 2
    if settings.warmup_workflow and refused(warmup_problems(services)):
        return 2
    log.info("ComfyUI %s at %s passed the start-up checks", version, settings.comfyui_url)
    heartbeat = Heartbeat(
        HeartbeatStore(services.aws.dynamodb, settings.control_table, ttl_s=HEARTBEAT_TTL_S),
        instance_id,
        settings.heartbeat_seconds,
        # /health tells a worker whose ComfyUI stopped answering from a healthy one.
        comfyui_alive=comfyui_answers(ComfyClient(settings.comfyui_url, client_id="gpuorch-heartbeat",
                                                  timeout=min(5.0, settings.comfyui_timeout))),
    )

    app = create_celery_app(settings, worker_consumer=GPU_CONSUMER)
    # Made before the pool forks: its processes read the notice the watch posts here.
    notices = app.notice_board

    def interrupted(consumer, notice: Notice) -> None:
        notices.post(notice.at)
        heartbeat.interrupted(notice.at)  # the lifecycle starts a replacement
        stop_consuming(consumer, settings.gpu_queue)
        log.warning("spot interruption notice: EC2 will %s this instance at %s: no new job; each running job ends "
                    "before then or goes back to the queue now", notice.action, notice.at.isoformat())

    def ready(sender=None, **_) -> None:
        # Served once the pool has forked, so no child holds the listening socket.
        serve_metrics()
        heartbeat.start()
        if spot is not None:
            SpotNoticeWatch(spot, settings.interruption_check_seconds,
                            lambda notice: interrupted(sender, notice)).start()
        log.info("GPU worker ready on %s: consuming %s%s", heartbeat.instance_id, settings.gpu_queue,
                 "; watching for a spot interruption notice" if spot is not None else "")

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(lambda **_: heartbeat.stop(), weak=False)
    app.worker_main(worker_argv(settings, loglevel=settings.log_level) + list(argv or []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
