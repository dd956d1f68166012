"""The control worker process: consumes only the control queue, on the always-on host; serves the lifecycle's metrics."""

from __future__ import annotations

import logging
import sys

from gpuorch.celery.app import create_celery_app
from prometheus_client import REGISTRY

from gpuorch.logs import configure_logging
from gpuorch.metrics.exposition import serve
from lifecycle.live.metrics import lifecycle_metrics
from gpuorch.celery.monitoring.worker import broadcast_flags
from gpuorch.settings import Settings

log = logging.getLogger(__name__)


def worker_argv(settings: Settings, *, loglevel: str = "INFO") -> list[str]:
    return [
        "worker",
        "--queues", settings.control_queue,
        # Control tasks are short AWS calls, and webhook POSTs of at most GPUORCH_WEBHOOK_TIMEOUT_SECONDS: threads
        # are enough, and enough of them that slow receivers leave the lifecycle check one.
        "--pool", "threads",
        "--concurrency", "8",
        "--hostname", "control@%h",
        *broadcast_flags(settings),
        "--loglevel", loglevel,
    ]


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    # One process (a thread pool): its own registry is the whole story. The lifecycle check records there.
    lifecycle_metrics()
    try:
        serve(REGISTRY, settings.metrics_address, settings.control_metrics_port)
    except OSError as exc:
        # The lifecycle matters more than its figures: the worker goes on without /metrics.
        log.error("cannot serve metrics on %s:%d: %s", settings.metrics_address, settings.control_metrics_port, exc)
    app = create_celery_app(settings)
    app.worker_main(worker_argv(settings, loglevel=settings.log_level) + list(argv or []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
