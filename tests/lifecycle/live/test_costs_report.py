"""The cost report's pure parts: the period a query names, job GPU seconds, boot estimates, the report, its text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.clock import timestamp
from gpuorch.jobs.store import Job
from lifecycle.billing import CostReport, Run
from lifecycle.live.costs import (
    JobTimes, MonthBudget, Period, PeriodError, boot_estimate, cost_document, format_document, job_times,
    parse_period, period_report,
)
from lifecycle.live.runs import RunRecord

UTC = timezone.utc
NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)
T0 = datetime(2026, 6, 10, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize("raw_from,raw_to,start,end", [
    (None, None, datetime(2026, 6, 1, tzinfo=UTC), NOW),  # this month so far
    ("", " ", datetime(2026, 6, 1, tzinfo=UTC), NOW),  # empty is not given
    ("2026-06-03", None, datetime(2026, 6, 3, tzinfo=UTC), NOW),
    ("2026-05-01", "2026-05-31", datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)),  # days included
    (None, "2026-04-30", datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),  # the month it ends in
    (None, "2026-05-01T00:00:00Z", datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
    ("2026-06-01T08:00:00+02:00", "2026-06-01T10:00:00", datetime(2026, 6, 1, 6, tzinfo=UTC),
     datetime(2026, 6, 1, 10, tzinfo=UTC)),  # an offset is converted; none means UTC
    ("2026-06-15T12:30:00Z", None, NOW, NOW),  # empty, not refused
    ("2025-06-15", "2026-06-14", datetime(2025, 6, 15, tzinfo=UTC), datetime(2026, 6, 15, tzinfo=UTC)),  # 365 days
    ("2024-01-01", "2024-12-31", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),  # leap year
])
def test_parse_period(raw_from, raw_to, start, end):
    assert parse_period(raw_from, raw_to, NOW) == Period(start, end)


@pytest.mark.parametrize("raw_from,raw_to,field,reason", [
    ("yesterday", None, "from", "is not an ISO 8601 date or date-time"),
    (None, "2026-02-30", "to", "is not an ISO 8601 date or date-time"),
    ("2026-06-15T25:00", None, "from", "is not an ISO 8601 date or date-time"),
    ("2026-06-10", "2026-06-09", "from", "is after to"),
    ("2026-07-01", None, "from", "is after to"),  # the future, up to now
    ("2025-01-01", "2026-06-01", "to", "at most 366 are reported"),
    ("2025-01-01", None, "from", "at most 366 are reported"),
])
def test_a_bad_period_names_its_field(raw_from, raw_to, field, reason):
    with pytest.raises(PeriodError) as refused:
        parse_period(raw_from, raw_to, NOW)
    assert refused.value.field == field
    assert reason in refused.value.reason


def stamp(seconds: float | None) -> str | None:
    return None if seconds is None else timestamp(at(seconds))


def job(job_id="j", *, status="succeeded", created=0.0, started=10.0, finished=40.0, gpu=None) -> Job:
    return Job(job_id=job_id, workflow="camera-angle", status=status, params={}, created_at=stamp(created),
               updated_at=stamp(finished), started_at=stamp(started), finished_at=stamp(finished), gpu_seconds=gpu)


@pytest.mark.parametrize("record,times", [
    (job(gpu=21.5), JobTimes(at(0).timestamp(), at(10).timestamp(), 21.5)),  # ComfyUI's time when known
    (job(gpu=None), JobTimes(at(0).timestamp(), at(10).timestamp(), 30.0)),  # else the wall time
    (job(status="failed", started=None, finished=50.0), JobTimes(at(0).timestamp(), None, None)),  # never ran
])
def test_job_times(record, times):
    assert job_times(record) == times


def times(created: float, started: float | None) -> JobTimes:
    return JobTimes(created, started, None if started is None else 10.0)


@pytest.mark.parametrize("run,others,jobs,boot", [
    (Run("a", 100, 1000), [], [], 0.0),  # nothing tells: unknown, counted idle
    (Run("a", 100, 1000), [], [times(90, 235), times(95, 300)], 135.0),  # the first job that waited for it
    (Run("a", 100, 1000), [], [times(150, 200), times(90, 260)], 160.0),  # one sent after the start tells nothing
    (Run("a", 100, 1000), [], [times(90, 1000)], 0.0),  # started once the run was over: another run's
    (Run("a", 100, 1000), [], [times(10, 50)], 0.0),  # started before it
    (Run("a", 100, 1000), [Run("b", 0, 500)], [times(90, 120), times(95, 600)], 500.0),  # b took the first
    (Run("a", 100, 1000), [Run("b", 0, 2000)], [times(90, 120)], 0.0),  # always another run open: unknown
])
def test_boot_estimate(run, others, jobs, boot):
    assert boot_estimate(run, others, sorted(jobs, key=lambda j: j.started_s)) == boot


def record(instance_id: str, start: float, stop: float | None, price: float = 3.6,
           interrupted: float | None = None) -> RunRecord:
    return RunRecord(instance_id, at(start), None if stop is None else at(stop), "g6e.2xlarge",
                     "on-demand" if interrupted is None else "spot", price,
                     None if interrupted is None else at(interrupted))


PERIOD = Period(at(0), at(10_000))


@pytest.mark.parametrize("records,jobs,now,expected", [
    # nothing ran
    ([], [], at(10_000), CostReport(10_000, 0, 0, 0, 0, 0, 0.0, 0)),
    # one run of 1000 s at $3.60/h: 100 s boot (the job waiting since second 50 started at 200), 2 jobs 400 s busy
    ([record("i-1", 100, 1100)], [job("a", created=50, started=200, finished=400, gpu=180),
                                  job("b", created=300, started=400, finished=700, gpu=220)],
     at(10_000), CostReport(10_000, 1, 1000, 400, 100, 500, 1.0, 2)),
    # two prices: 1000 s at $3.60/h and 60 s (the minimum of a 10 s start) at $7.20/h
    ([record("i-1", 100, 1100), record("i-2", 5000, 5010, price=7.2)], [],
     at(10_000), CostReport(10_000, 2, 1060, 0, 0, 1060, 1.12, 0)),
    # a run carried in from before the period: only its part inside counts, and no minimum
    ([record("i-1", -500, 30)], [], at(10_000), CostReport(10_000, 0, 30, 0, 0, 30, 0.03, 0)),
    # an open run counts up to now
    ([record("i-1", 9000, None)], [], at(9500), CostReport(10_000, 1, 500, 0, 0, 500, 0.5, 0)),
    # a failed job that never ran is not a GPU job; overlapping wall times cannot make busy pass billed
    ([record("i-1", 0, 100)], [job("a", created=0, started=None, finished=50, status="failed"),
                               job("b", created=0, started=10, finished=90, status="failed"),
                               job("c", created=5, started=20, finished=95, status="failed")],
     at(10_000), CostReport(10_000, 1, 100, 90, 10, 0, 0.1, 2)),
    # a spot run EC2 interrupted is billed as any other, and counted; the on-demand replacement is a start
    ([record("i-spot", 0, 1000, price=0.9, interrupted=1000), record("i-od", 900, 1900)], [],
     at(10_000), CostReport(10_000, 2, 2000, 0, 0, 2000, 1.25, 0, interruptions=1)),
    # an interruption after the period is not this period's
    ([record("i-spot", 9000, 10_100, price=0.9, interrupted=10_100)], [],
     at(10_200), CostReport(10_000, 1, 1000, 0, 0, 1000, 0.25, 0, interruptions=0)),
])
def test_period_report(records, jobs, now, expected):
    got = period_report(records, jobs, PERIOD, now)
    assert _rounded(got) == _rounded(expected)


def _rounded(r: CostReport) -> tuple:
    return (r.period_s, r.starts, round(r.billed_s, 6), round(r.busy_s, 6), round(r.boot_s, 6), round(r.idle_s, 6),
            round(r.dollars, 6), r.jobs, r.interruptions)


REPORT = CostReport(period_s=86400, starts=3, billed_s=7200, busy_s=3600, boot_s=720, idle_s=2880, dollars=4.48,
                    jobs=120)


def test_cost_document():
    document = cost_document(REPORT, Period(datetime(2026, 6, 1, tzinfo=UTC), NOW),
                             MonthBudget("2026-06", 45.123456, 100.0))
    assert document == {
        "period": {"from": "2026-06-01T00:00:00.000000Z", "to": "2026-06-15T12:30:00.000000Z"},
        "starts": 3,
        "gpu_hours": 2.0,
        "dollars": 4.48,
        "busy_share": 0.5,
        "idle_share": 0.4,
        "boot_share": 0.1,
        "jobs": 120,
        "cost_per_job": pytest.approx(0.037333),
        "interruptions": 0,
        "budget": {"month": "2026-06", "spend_usd": 45.1235, "budget_usd": 100.0},
    }
    empty = cost_document(CostReport(60, 0, 0, 0, 0, 0, 0.0, 0), Period(NOW, NOW), None)
    assert (empty["cost_per_job"], empty["budget"], empty["busy_share"]) == (None, None, 0.0)


def test_format_document_is_an_aligned_table():
    document = cost_document(REPORT, Period(datetime(2026, 6, 1, tzinfo=UTC), NOW), MonthBudget("2026-06", 45.1, 100.0))
    assert format_document(document).splitlines() == [
        "period          2026-06-01T00:00:00.000000Z to 2026-06-15T12:30:00.000000Z",
        "starts          3",
        "GPU hours       2.00 billed",
        "cost            $4.48",
        "busy            50%",
        "idle            40%",
        "boot            10%",
        "jobs            120",
        "per job         $0.0373",
        "budget 2026-06  $45.10 spent of $100.00",
    ]
    assert format_document({**document, "budget": None, "cost_per_job": None}).splitlines()[-1] == "per job    -"
    assert format_document({**document, "budget": None, "interruptions": 2}).splitlines()[-1] == (
        "interrupted  2 run(s) (spot)")
