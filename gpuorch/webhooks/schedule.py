"""When a webhook delivery is tried again, and when it is given up: a pure schedule over hours."""

from __future__ import annotations

from datetime import datetime, timedelta

from gpuorch.webhooks.events import JOB_PROGRESS

# Waits before each try after the first (about 17.6 hours in all, 8 tries), as webhook senders commonly space them:
# a receiver that is down for a deploy hears within minutes, one down overnight still hears in the morning.
RETRY_DELAYS_S: tuple[float, ...] = (5, 60, 300, 1800, 7200, 18000, 36000)

DELIVERED = "delivered"
PENDING = "pending"
GIVEN_UP = "given_up"
STATES = (PENDING, DELIVERED, GIVEN_UP)


def succeeded(status_code: int | None) -> bool:
    """A receiver that answers 2xx has the event; anything else (no answer included) is tried again."""
    return status_code is not None and 200 <= status_code < 300


def next_try(event: str, tries: int, at: datetime) -> datetime | None:
    """When to try again after `tries` failed tries, the last at `at`; None: give up. Progress is tried once."""
    if event == JOB_PROGRESS or tries > len(RETRY_DELAYS_S):
        return None
    return at + timedelta(seconds=RETRY_DELAYS_S[tries - 1])


def after_attempt(event: str, tries: int, status_code: int | None, at: datetime) -> tuple[str, datetime | None]:
    """(the delivery's state, its next try) after its `tries`-th try of this round answered `status_code`."""
    if succeeded(status_code):
        return DELIVERED, None
    due = next_try(event, tries, at)
    return (PENDING, due) if due is not None else (GIVEN_UP, None)
