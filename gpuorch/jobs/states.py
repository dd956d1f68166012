"""The job status machine: statuses only move forward, and these tables say which moves exist."""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
# Not started by its deadline: it never runs, and costs nothing.
EXPIRED = "expired"

STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, EXPIRED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})

# For each target status, the statuses a record may hold for the move to be accepted.
# running -> running is a redelivered job starting again (its attempts count grows).
_ALLOWED_FROM: dict[str, frozenset[str]] = {
    QUEUED: frozenset(),
    RUNNING: frozenset({QUEUED, RUNNING}),
    SUCCEEDED: frozenset({RUNNING}),
    FAILED: frozenset({QUEUED, RUNNING}),
    CANCELLED: frozenset({QUEUED, RUNNING}),
    EXPIRED: frozenset({QUEUED}),
}


def allowed_from(target: str) -> frozenset[str]:
    """The statuses from which a record may move to `target`."""
    try:
        return _ALLOWED_FROM[target]
    except KeyError:
        raise ValueError(f"unknown job status {target!r}") from None


def can_move(current: str, target: str) -> bool:
    return current in allowed_from(target)


def is_terminal(status: str) -> bool:
    return status in TERMINAL
