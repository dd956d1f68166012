"""Time as gpuorch reads and writes it: now in UTC, and timestamps that sort in time order."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

#: Tells the time; injected wherever a decision or a record depends on it, so tests can set it.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: sorts lexicographically in time order (the GSI's range key)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
