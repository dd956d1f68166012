"""Operator warm windows: reading them, their time zones and midnights, the lead before one opens."""

from datetime import datetime, timezone

import pytest

from lifecycle.model import Policy
from lifecycle.schedule import ScheduleError, parse_windows, warm_window_at, with_windows

BERLIN_WORKDAYS = parse_windows("Mon-Fri 08:00-18:00 Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize("moment,warm", [
    (utc(2026, 12, 7, 7, 0), True),      # Monday 08:00 in Berlin (UTC+1 in winter)
    (utc(2026, 12, 7, 6, 59), False),
    (utc(2026, 12, 7, 16, 59), True),
    (utc(2026, 12, 7, 17, 0), False),    # 18:00 in Berlin: the window has closed
    (utc(2026, 7, 6, 6, 0), True),       # summer time: 08:00 in Berlin is 06:00 UTC
    (utc(2026, 12, 12, 10, 0), False),   # Saturday
])
def test_a_window_is_read_in_its_time_zone(moment, warm):
    assert (warm_window_at(BERLIN_WORKDAYS, moment) is not None) == warm


def test_a_window_past_midnight_belongs_to_the_day_it_starts():
    [late] = parse_windows("Sat 22:00-02:00 UTC")
    assert late.covers(utc(2026, 12, 12, 23, 0)) and late.covers(utc(2026, 12, 13, 1, 59))
    assert not late.covers(utc(2026, 12, 13, 22, 30)) and not late.covers(utc(2026, 12, 12, 1, 0))


def test_days_lists_ranges_that_wrap_and_the_whole_day():
    [w] = parse_windows("Fri-Mon,Wed 00:00-24:00 UTC")
    assert w.days == {4, 5, 6, 0, 2}
    assert w.covers(utc(2026, 12, 9, 23, 59))  # a Wednesday, to its last minute


def test_the_lead_opens_a_window_one_cold_start_early():
    before = utc(2026, 12, 7, 6, 58)  # 07:58 in Berlin
    assert warm_window_at(BERLIN_WORKDAYS, before) is None
    assert warm_window_at(BERLIN_WORKDAYS, before, lead_s=144) is not None


def test_inside_a_window_one_instance_is_kept_and_the_policy_says_why():
    policy, why = with_windows(Policy(min_instances=0), BERLIN_WORKDAYS, utc(2026, 12, 7, 9, 0))
    assert policy.min_instances == 1 and "Mon-Fri 08:00-18:00 Europe/Berlin" in why
    assert with_windows(Policy(min_instances=2, max_instances=2), BERLIN_WORKDAYS,
                        utc(2026, 12, 7, 9, 0))[0].min_instances == 2
    assert with_windows(Policy(), BERLIN_WORKDAYS, utc(2026, 12, 12, 9, 0)) == (Policy(), "")


@pytest.mark.parametrize("text,says", [
    ("Mon-Fri 8-18 Europe/Berlin", "expected DAYS HH:MM-HH:MM ZONE"),
    ("Moonday 08:00-18:00 UTC", "'moonday' is not a day"),
    ("Mon 08:00-18:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("Mon 25:00-18:00 UTC", "'25:00' is not a time of day"),
    ("Mon 08:00-08:00 UTC", "starts and ends at the same time"),
])
def test_a_window_that_cannot_be_read_says_why(text, says):
    with pytest.raises(ScheduleError, match=says):
        parse_windows(text)


def test_no_windows():
    assert parse_windows("") == () and parse_windows(" ; ") == ()
