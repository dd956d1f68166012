"""Pure parts of the metrics: submission outcome classes, failure classes, the GPU busy share."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from prometheus_client import CollectorRegistry

from gpuorch.comfyui.errors import ComfyError, ComfyPromptLost, ComfyRejected, ComfyTimeout, ComfyUnavailable
from gpuorch.execution.runner import OutputsNotStored, failure_class
from gpuorch.inputs import InputRejected, InputUnavailable
from gpuorch.metrics.api import submission_outcome
from gpuorch.metrics.jobs import BUSY_SECONDS, BusyShareCollector, JobMetrics, busy_share, counter_total
from gpuorch.workflows import BindError


@pytest.mark.parametrize("status,outcome", [
    (202, "accepted"), (400, "invalid"), (422, "invalid"), (413, "too_large"), (404, "unknown_workflow"),
    (401, "unauthorized"), (403, "unauthorized"), (429, "rate_limited"), (503, "unavailable"), (500, "error"),
    (405, "error"),
])
def test_submission_outcome(status, outcome):
    assert submission_outcome(status) == outcome


@pytest.mark.parametrize("exc,reason", [
    (SoftTimeLimitExceeded(), "timeout"), (ComfyTimeout("p", 30), "timeout"),
    (InputRejected("not an image"), "input_rejected"), (InputUnavailable("404"), "input_unavailable"),
    (ComfyUnavailable("refused"), "comfyui_unavailable"), (ComfyError("node error"), "comfyui_error"),
    (ComfyPromptLost("p"), "comfyui_unavailable"), (ComfyRejected("invalid prompt"), "comfyui_error"),
    (BindError("2 images named, 1 given"), "input_rejected"), (OutputsNotStored("S3 refused"), "outputs_not_stored"),
])
def test_failure_class(exc, reason):
    assert failure_class(exc) == reason


@pytest.mark.parametrize("samples,now,expected", [
    ([], 100.0, 0.0),
    ([(0.0, 0.0)], 0.0, 0.0),
    ([(0.0, 0.0), (50.0, 25.0)], 50.0, 0.5),  # younger than the window: measured since the first sample
    ([(0.0, 0.0), (100.0, 30.0), (200.0, 30.0), (400.0, 90.0)], 400.0, 0.2),  # base: the sample at t=100
    ([(0.0, 0.0), (400.0, 0.0)], 400.0, 0.0),
    ([(0.0, 0.0), (10.0, 60.0)], 10.0, 1.0),  # a long job counted when it ended: clamped
])
def test_busy_share(samples, now, expected):
    assert busy_share(samples, now, window_s=300) == pytest.approx(expected)


def test_the_busy_share_collector_reads_the_busy_seconds_counter_at_each_scrape():
    registry = CollectorRegistry()
    metrics = JobMetrics(registry)
    now = [1000.0]
    collector = BusyShareCollector(lambda: counter_total(registry, BUSY_SECONDS), 300, clock=lambda: now[0])

    metrics.busy_seconds.labels("camera-angle").inc(30)
    metrics.busy_seconds.labels("qwen-image-edit").inc(15)
    now[0] += 90
    assert collector.share() == pytest.approx(0.5)

    now[0] += 600  # nothing ran since: the window holds no busy time
    assert collector.share() == 0.0
    assert len(collector.samples) <= 3
