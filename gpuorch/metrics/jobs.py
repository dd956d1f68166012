"""The GPU worker's figures: job duration, queue wait, failures, redeliveries, ComfyUI retries and GPU busy share."""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

# Jobs take seconds to minutes (GPUORCH_TASK_TIME_LIMIT 120 s by default); waits include a GPU's cold start.
DURATION_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600)
BUSY_SECONDS = "gpuorch_gpu_busy_seconds"


class JobMetrics:
    """Recorded in the pool's child processes (one file each, summed by the worker's /metrics); every metric
    has labels, so none holds a value before its first job (see exposition.enable_multiprocess)."""

    def __init__(self, registry: CollectorRegistry):
        self.duration = Histogram(
            "gpuorch_job_duration_seconds", "Time from a job's start on the GPU worker to its end, by outcome.",
            ["workflow", "outcome"], buckets=DURATION_BUCKETS, registry=registry,
        )
        self.queue_wait = Histogram(
            "gpuorch_job_queue_wait_seconds", "Time from a job's submission to its first start on a GPU worker.",
            ["workflow"], buckets=WAIT_BUCKETS, registry=registry,
        )
        self.busy_seconds = Counter(
            BUSY_SECONDS, "Seconds ComfyUI spent executing jobs; rate() of it is the GPU's busy share.",
            ["workflow"], registry=registry,
        )
        self.failures = Counter(
            "gpuorch_job_failures", "Jobs failed, by workflow and reason class.",
            ["workflow", "reason"], registry=registry,
        )
        self.redeliveries = Counter(
            "gpuorch_job_redeliveries", "Jobs started again after an earlier delivery (a worker died or SQS "
            "handed the message out again).", ["workflow"], registry=registry,
        )
        self.resubmissions = Counter(
            "gpuorch_comfyui_resubmissions", "Prompts submitted again because ComfyUI lost them (a restart).",
            ["workflow"], registry=registry,
        )
        self.comfyui_retries = Counter(
            "gpuorch_comfyui_retries", "ComfyUI calls retried while it was unreachable.",
            ["workflow"], registry=registry,
        )


@functools.cache
def job_metrics() -> JobMetrics:
    """The process's JobMetrics, made on first use (in the pool's child, after the worker set multiprocess up)."""
    return JobMetrics(REGISTRY)


def busy_share(samples: Sequence[tuple[float, float]], now: float, window_s: float) -> float:
    """The fraction of the last `window_s` seconds the GPU was busy, from samples (time, busy seconds so far)
    in time order: the busy seconds gained since the latest sample at or before the window's start (else the
    oldest), over the time since that sample. Busy time is counted when a job ends, so a long job lands in the
    window it ends in: the share is clamped to [0, 1]."""
    if not samples:
        return 0.0
    start = now - window_s
    base = samples[0]
    for sample in samples:
        if sample[0] <= start:
            base = sample
        else:
            break
    elapsed = now - base[0]
    if elapsed <= 0:
        return 0.0
    return min(1.0, max(0.0, (samples[-1][1] - base[1]) / elapsed))


class BusyShareCollector:
    """gpuorch_gpu_busy_share, worked out in the worker's main process each time it is scraped from the
    busy seconds its children recorded (`read_busy_seconds`), sampled at every scrape."""

    def __init__(self, read_busy_seconds: Callable[[], float], window_s: float,
                 clock: Callable[[], float] = time.monotonic):
        self.read_busy_seconds, self.window_s, self.clock = read_busy_seconds, window_s, clock
        self._lock = threading.Lock()
        self.samples: deque[tuple[float, float]] = deque([(clock(), read_busy_seconds())])

    def share(self) -> float:
        with self._lock:
            now = self.clock()
            self.samples.append((now, self.read_busy_seconds()))
            # Keep one sample at or before the window's start: the base the share is measured from.
            while len(self.samples) > 1 and self.samples[1][0] <= now - self.window_s:
                self.samples.popleft()
            return busy_share(self.samples, now, self.window_s)

    def collect(self):
        yield GaugeMetricFamily(
            "gpuorch_gpu_busy_share",
            f"Fraction of the last {self.window_s:g} s ComfyUI spent executing jobs (GPUORCH_GPU_BUSY_WINDOW_SECONDS).",
            value=self.share(),
        )


def counter_total(registry: CollectorRegistry, name: str) -> float:
    """The sum of a counter's samples over all its labels (and, in multiprocess mode, all processes)."""
    return sum(sample.value for family in registry.collect() if family.name == name
               for sample in family.samples if sample.name == f"{name}_total")
