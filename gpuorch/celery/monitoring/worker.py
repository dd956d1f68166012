"""The Celery worker flags that decide what a worker broadcasts, shared by the GPU and control workers."""

from __future__ import annotations

from gpuorch.settings import Settings


def broadcast_flags(settings: Settings) -> list[str]:
    """Mingle and gossip stay off: each would give every worker a queue of its own and traffic at start-up for
    what gpuorch does not use (sharing revoked ids, leader election). Heartbeats are events every 2 s, and what
    shows a worker online in Flower: on with monitoring."""
    flags = ["--without-mingle", "--without-gossip"]
    if not settings.monitoring:
        flags.append("--without-heartbeat")
    return flags
