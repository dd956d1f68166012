"""The lifecycle check's figures (control worker): instances by state, starts by market, fallbacks to on-demand,
spot interruptions, stops, holds, spend."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from lifecycle.model import FALLBACK_REASONS, INSTANCE_STATES, MARKETS


class LifecycleMetrics:
    """Made only where the check runs (lifecycle_metrics()), so no other process exports empty lifecycle series."""

    def __init__(self, registry: CollectorRegistry):
        self.instances = Gauge(
            "gpuorch_gpu_instances", "The pool's GPU instances by EC2 state, as the last lifecycle check saw them.",
            ["state"], registry=registry,
        )
        self.starts = Counter("gpuorch_gpu_starts", "GPU instance starts the lifecycle made (StartInstances calls), "
                              "by the instance's market.", ["market"], registry=registry)
        self.fallbacks = Counter(
            "gpuorch_gpu_fallbacks",
            "Starts of an on-demand instance in place of a stopped spot one, by why: spot_price (not under "
            "GPUORCH_SPOT_MAX_SHARE of on-demand, or unknown), spot_refused (EC2 refused it, now or lately), "
            "spot_interrupted (interrupted lately).", ["reason"], registry=registry,
        )
        self.interruptions = Counter(
            "gpuorch_gpu_interruptions", "Spot interruption notices the GPU workers reported (one per notice).",
            registry=registry,
        )
        self.start_refusals = Counter(
            "gpuorch_gpu_start_refusals", "GPU starts EC2 refused for want of capacity (tried again next check).",
            registry=registry,
        )
        for market in MARKETS:  # every series from the first scrape, so a rate over them is never missing one
            self.starts.labels(market)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason)
        self.stops = Counter("gpuorch_gpu_stops", "Idle GPU instance stops the lifecycle made (StopInstances calls).",
                             registry=registry)
        self.refusals = Counter(
            "gpuorch_lifecycle_refusals",
            "GPU instances the lifecycle stopped because they cannot serve, by why: worker_refused (the GPU worker "
            "refused to start) or not_ready (no report within the boot grace).", ["reason"], registry=registry,
        )
        for reason in ("worker_refused", "not_ready"):
            self.refusals.labels(reason)  # both series from the start, at 0
        self.held = Gauge(
            "gpuorch_gpu_instances_held",
            "GPU instances held stopped because they cannot serve, until their configuration changes or an operator "
            "starts them.", registry=registry,
        )
        self.month_spend = Gauge(
            "gpuorch_gpu_month_spend_dollars", "GPU spend of this calendar month (UTC) so far, from the run log.",
            registry=registry,
        )
        self.last_check = Gauge(
            "gpuorch_lifecycle_last_check_timestamp_seconds", "When the last lifecycle check ran (Unix time).",
            registry=registry,
        )

    def observe_check(self, states: Iterable[str], month_spend_usd: float, at: datetime) -> None:
        counts = {state: 0 for state in INSTANCE_STATES}
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        for state, count in counts.items():
            self.instances.labels(state).set(count)
        self.month_spend.set(month_spend_usd)
        self.last_check.set(at.timestamp())


@functools.cache
def lifecycle_metrics() -> LifecycleMetrics:
    return LifecycleMetrics(REGISTRY)
