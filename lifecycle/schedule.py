"""Operator warm windows: hours of the week, in a time zone, during which one GPU is kept ready."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lifecycle.model import Policy
from gpuorch.errors import ConfigurationError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(?P<days>[A-Za-z,-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s+(?P<zone>\S+)$")


class ScheduleError(ConfigurationError, ValueError):
    """A warm window that cannot be read; the message says which and why."""


@dataclass(frozen=True)
class WarmWindow:
    """From `start` to `end` (local time in `zone`) on each of `days` (0 = Monday); an `end` at or before `start`
    runs past midnight into the next day."""

    days: frozenset[int]
    start: time
    end: time
    zone: str
    text: str = ""

    def covers(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.zone))
        day, now = local.weekday(), local.time().replace(tzinfo=None)
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        return (day in self.days and now >= self.start) or ((day - 1) % 7 in self.days and now < self.end)


def _days(text: str, window: str) -> frozenset[int]:
    found: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        try:
            a, b = DAYS.index(first[:3]), DAYS.index((last or first)[:3])
        except ValueError:
            raise ScheduleError(f"warm window {window!r}: {part!r} is not a day or a range of days "
                                f"({', '.join(d.title() for d in DAYS)})") from None
        found.update(DAYS.index(d) % 7 for d in (DAYS * 2)[a:a + (b - a) % 7 + 1])
    return frozenset(found)


def _time(text: str, window: str) -> time:
    hours, minutes = (int(p) for p in text.split(":"))
    if hours == 24 and minutes == 0:
        return time.max  # the end of the day
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ScheduleError(f"warm window {window!r}: {text!r} is not a time of day (HH:MM)")
    return time(hours, minutes)


def parse_windows(text: str) -> tuple[WarmWindow, ...]:
    """Windows separated by ';', each `DAYS HH:MM-HH:MM ZONE`, e.g. `Mon-Fri 08:00-18:00 Europe/Berlin`
    (days: a day, a range, or a comma-separated list of them; ZONE: an IANA time zone name). Empty: none."""
    windows = []
    for raw in (part.strip() for part in text.split(";")):
        if not raw:
            continue
        match = _WINDOW.match(raw)
        if match is None:
            raise ScheduleError(f"warm window {raw!r}: expected DAYS HH:MM-HH:MM ZONE, e.g. "
                                f"'Mon-Fri 08:00-18:00 Europe/Berlin'")
        try:
            ZoneInfo(match["zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"warm window {raw!r}: unknown time zone {match['zone']!r}") from None
        start, end = _time(match["start"], raw), _time(match["end"], raw)
        if start == end:
            raise ScheduleError(f"warm window {raw!r}: it starts and ends at the same time")
        windows.append(WarmWindow(_days(match["days"], raw), start, end, match["zone"], raw))
    return tuple(windows)


def warm_window_at(windows: Sequence[WarmWindow], moment: datetime, lead_s: float = 0.0) -> WarmWindow | None:
    """The window that wants a GPU ready at `moment`: one covering it, or beginning within `lead_s` (a cold start,
    so that the GPU is ready when the window opens)."""
    for window in windows:
        if window.covers(moment) or (lead_s > 0 and window.covers(moment + timedelta(seconds=lead_s))):
            return window
    return None


def with_windows(policy: Policy, windows: Sequence[WarmWindow], moment: datetime,
                 lead_s: float = 0.0) -> tuple[Policy, str]:
    """`policy` with at least one instance kept running inside a warm window, and why (empty outside them)."""
    window = warm_window_at(windows, moment, lead_s)
    if window is None:
        return policy, ""
    return (dataclasses.replace(policy, min_instances=max(1, policy.min_instances)),
            f"warm window {window.text or 'of the schedule'}: one GPU kept ready")
