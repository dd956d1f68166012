"""A spot interruption notice as the GPU worker sees it, shared with its pool's processes, and what becomes of each job
it holds when one comes: finish it if it surely ends before the interruption, else give it back at once."""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# A job may go on after a notice only if its worst case ends this long before the interruption time. Its worst
# case already covers the output upload and the final writes (the task time limit bounds the whole task); the
# margin is for what follows it (the message's deletion) and for the notice's time being approximate and the
# instance's clock a little off EC2's.
NOTICE_MARGIN_S = 10.0

FINISH, GIVE_BACK = "finish", "give back"


@dataclass(frozen=True)
class Notice:
    """EC2's spot interruption notice (the instance metadata's spot/instance-action): stop, terminate or hibernate
    at `at`, about two minutes after it appears."""

    action: str
    at: datetime


def parse_notice(text: str) -> Notice:
    """The notice from its JSON, e.g. {"action": "stop", "time": "2026-05-04T09:02:00Z"}; ValueError otherwise."""
    try:
        document = json.loads(text)
        at = datetime.fromisoformat(document["time"].replace("Z", "+00:00"))
        action = document["action"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a spot interruption notice: {text[:200]!r}") from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return Notice(str(action), at.astimezone(timezone.utc))


def job_verdict(location: str | None, elapsed_s: float, now: datetime, interruption_at: datetime,
                time_limit_s: float, margin_s: float = NOTICE_MARGIN_S) -> tuple[str, str]:
    """(FINISH or GIVE_BACK, why) for one job of the worker when the instance is interrupted at `interruption_at`.

    `location` is where ComfyUI has the job's prompt ("running", "pending", "done", or None: not there yet), and
    `elapsed_s` how long the job's task has run. A job not yet running on the GPU has cost nothing: another instance
    can take it now. A running one finishes only if its worst case, the task time limit counted from its start,
    ends `margin_s` before the interruption; a job cut by the stop would come back only after the queue's
    visibility timeout, while one given back now loses only what it ran so far.
    """
    if location == "done":
        return FINISH, "its prompt has finished; only its outputs are left to store"
    if location != "running":
        return GIVE_BACK, "it has not started on the GPU"
    worst_end = now + timedelta(seconds=max(0.0, time_limit_s - elapsed_s))
    deadline = interruption_at - timedelta(seconds=margin_s)
    if worst_end <= deadline:
        return FINISH, (f"it ends by {worst_end.isoformat()} at the latest (its time limit), "
                        f"{(deadline - worst_end).total_seconds():.0f} s before the interruption less {margin_s:.0f} s")
    return GIVE_BACK, (f"its time limit ends {(worst_end - deadline).total_seconds():.0f} s after the interruption "
                       f"less {margin_s:.0f} s")


class NoticeBoard:
    """The notice's time as the worker's main process saw it, in shared memory, so the pool's processes (forked
    after the board was made) read what it posts. One float, 0 while no notice came."""

    def __init__(self) -> None:
        self._at = multiprocessing.RawValue("d", 0.0)  # a double; written once, read as a whole

    def post(self, at: datetime) -> None:
        self._at.value = at.timestamp()

    def read(self) -> datetime | None:
        value = self._at.value
        return datetime.fromtimestamp(value, timezone.utc) if value else None
