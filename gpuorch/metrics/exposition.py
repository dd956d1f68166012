"""How a process serves its Prometheus figures: one process alone, or the sum over a pool's processes."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess, start_http_server
from prometheus_client import values

log = logging.getLogger(__name__)

# prometheus_client's own switch: with it set, every process writes its figures to files there.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_folder(configured: str, kind: str) -> Path:
    """The folder a pool of processes of `kind` (api, gpu_worker) shares: under GPUORCH_METRICS_DIR, or a
    fresh temporary one. Two kinds never share one, as each empties its own at start."""
    if configured:
        folder = Path(configured) / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return Path(tempfile.mkdtemp(prefix=f"gpuorch-metrics-{kind}-"))


def enable_multiprocess(folder: Path) -> None:
    """Make this process and the ones it forks write their figures under `folder` (emptied first: figures of
    an earlier run would be summed in).

    Call it in the parent before the pool forks. prometheus_client picks its value store when it is first
    imported, which may already have happened (Celery and Flower import it): it is picked again here, which
    is safe as long as no gpuorch metric has recorded a value yet (they all have labels, so none has).
    """
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)
    values.ValueClass = values.get_value_class()


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (its counters and histograms stay in the sums)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)


def exposition_registry(own: CollectorRegistry, *extra) -> CollectorRegistry:
    """What /metrics shows: the sum over the pool's processes when multiprocess is on, else `own`; plus
    `extra` collectors (figures the serving process computes when scraped)."""
    registry = CollectorRegistry()
    if multiprocess_enabled():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(own))
    for collector in extra:
        registry.register(collector)
    return registry


class _Forward:
    """Another registry's figures, collected through this one."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of `registry` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(registry: CollectorRegistry, address: str, port: int) -> int | None:
    """Serve `registry` at http://address:port/metrics in a daemon thread; the port (None when port is 0)."""
    if not port:
        return None
    server, _thread = start_http_server(port, addr=address, registry=registry)
    bound = server.server_address[1]
    log.info("Prometheus metrics at http://%s:%d/metrics", address, bound)
    return bound
