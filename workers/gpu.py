"""The GPU worker process: checks the queue, waits for ComfyUI, checks the templates on it, then consumes jobs (or
records why it refuses, so that the lifecycle stops its instance); on a spot instance it watches for EC2's
interruption notice."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import time
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError
from celery.signals import worker_process_shutdown, worker_ready, worker_shutdown
from prometheus_client import REGISTRY, CollectorRegistry

from gpuorch.celery import names
from gpuorch.celery.app import create_celery_app
from gpuorch.comfyui.client import ComfyClient
from gpuorch.celery.giveback import stop_consuming
from gpuorch.comfyui.errors import ComfyUnavailable
from gpuorch.execution.interruption import Notice
from gpuorch.logs import configure_logging
from gpuorch.celery.monitoring.worker import broadcast_flags
from gpuorch.services import Services
from gpuorch.settings import Settings
from lifecycle.live.heartbeats import HEARTBEAT_TTL_S, HeartbeatStore
from lifecycle.live.identity import IdentityError, instance_identity
from lifecycle.live.refusals import RefusalStore
from workers.checks import model_problems, queue_visibility_timeout, visibility_problems
from gpuorch.metrics.exposition import (enable_multiprocess, exposition_registry, mark_process_dead, metrics_folder,
                                        serve)
from gpuorch.metrics.jobs import BUSY_SECONDS, BusyShareCollector, counter_total
from workers.heartbeat import Heartbeat, comfyui_answers
from workers.spot_watch import SpotNoticeWatch, spot_metadata
from workers.startup import check_round, record_refusal, run_checks

log = logging.getLogger(__name__)

# Exit statuses the unit tells apart (configs/deploy/systemd/gpuorch-gpu-worker.service): REFUSED is a refusal
# that cannot pass by itself, recorded for the lifecycle (which stops the instance), so systemd does not start the
# worker again (RestartPreventExitStatus); any other failure, a refusal that could not be recorded included,
# exits 1 and is retried after RestartSec.
REFUSED = 2

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
        # Both GPU queues: the transport polls the low-priority one only while the normal one has nothing.
        "--queues", ",".join(names.gpu_queues(settings)),
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


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, job_tasks=names.GPU_TASKS)
    try:
        # The heartbeat names the instance, so the lifecycle never stops it under a running job. First, before
        # any connection: off EC2 without an id, the refusal is the only thing the worker does. It names no
        # instance to record it under: the lifecycle's boot grace stops the instance instead.
        instance_id = instance_identity(settings.instance_id, settings.instance_metadata_url)
    except IdentityError as exc:
        log.error("refusing to start: %s", exc)
        return REFUSED
    configure_logging(settings.log_level, settings.log_format, instance_id,  # every line names the instance
                      job_tasks=names.GPU_TASKS)
    spot = spot_metadata(settings)
    serve_metrics = prepare_metrics(settings)
    services = Services(settings)
    # The low-priority queue is provisioned with the same visibility timeout; the normal one's is checked.
    visibility = queue_visibility_timeout(services.aws.sqs, services.aws.queue_url(settings.gpu_queue))
    stats: dict = {}
    # Refused at once, ComfyUI or not, when the queue or the model files (brought and verified by
    # gpuorch-models-sync.service, ordered before this worker) cannot serve.
    if not visibility_problems(visibility, settings.task_time_limit) and not model_problems(services):
        try:
            stats = wait_for_comfyui(settings.comfyui_url, settings.comfyui_ready_timeout)
        except ComfyUnavailable as exc:  # the template check says so, and repeats while it may pass
            log.warning("ComfyUI at %s did not answer within %.0f s: %s", settings.comfyui_url,
                        settings.comfyui_ready_timeout, exc)
    # A template the server cannot run would fail every job of its workflow: refuse before taking any, and say
    # why where the lifecycle sees it, so that it stops the instance rather than pay for a GPU that cannot serve.
    findings = run_checks(lambda: check_round(services, visibility), settings.startup_retry_seconds)
    if findings.problems:
        try:
            record_refusal(RefusalStore(services.aws.dynamodb, settings.control_table,
                                        instance_arn=services.aws.instance_arn), instance_id, findings)
        except (BotoCoreError, ClientError) as exc:
            log.error("could not record the refusal (systemd tries again): %s", exc)
            return 1
        return REFUSED
    version = stats.get("system", {}).get("comfyui_version", "?")
    log.info("ComfyUI %s at %s passed the start-up checks", version, settings.comfyui_url)
    heartbeat = Heartbeat(
        # Keyed by the instance's ARN, which IAM lets only this instance write under (lifecycle.live.instance_items).
        HeartbeatStore(services.aws.dynamodb, settings.control_table, ttl_s=HEARTBEAT_TTL_S,
                       instance_arn=services.aws.instance_arn),
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
        for queue in names.gpu_queues(settings):
            stop_consuming(consumer, queue)
        log.warning("spot interruption notice: EC2 will %s this instance at %s: no new job; each running job ends "
                    "before then or goes back to the queue now", notice.action, notice.at.isoformat())

    def ready(sender=None, **_) -> None:
        # Served once the pool has forked, so no child holds the listening socket.
        serve_metrics()
        heartbeat.start()
        if spot is not None:
            SpotNoticeWatch(spot, settings.interruption_check_seconds,
                            lambda notice: interrupted(sender, notice)).start()
        log.info("GPU worker ready on %s: consuming %s%s", heartbeat.instance_id,
                 " then ".join(names.gpu_queues(settings)),
                 "; watching for a spot interruption notice" if spot is not None else "")

    worker_ready.connect(ready, weak=False)
    worker_shutdown.connect(lambda **_: heartbeat.stop(), weak=False)
    app.worker_main(worker_argv(settings, loglevel=settings.log_level) + list(argv or []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
