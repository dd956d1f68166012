"""Which instance runs to open and close (pure), and what runs cost by billing's rules (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lifecycle.live.pool import PoolInstance
from lifecycle.model import Instance
from lifecycle.live.runs import OpenRun, RunAction, RunRecord, month_start, months_between, reconcile_actions, spend

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def run(instance_id="i-1", started=ago(600), kind="g6e.2xlarge", market="on-demand", price=2.24):
    return OpenRun(instance_id, started, kind, market, price)


def opened(instance_id, at, reason, kind="g6e.2xlarge", market="on-demand"):
    return RunAction("open", instance_id, at, reason, kind, market)


def closed(open_run, at, reason):
    return RunAction("close", open_run.instance_id, at, reason, open_run.instance_type, open_run.market,
                     open_run.started_at, open_run.hourly_usd)


R = run()

CASES = [
    # (name, open runs, instances, last stops, expected actions)
    ("running, no run: opens at its launch", [], [Instance("i-1", "running", launched_at=ago(300))], {},
     [opened("i-1", ago(300), "instance running")]),
    ("pending, no run: opens at its launch", [], [Instance("i-1", "pending", launched_at=ago(5))], {},
     [opened("i-1", ago(5), "instance pending")]),
    ("no launch time: opens now", [], [Instance("i-1", "running")], {},
     [opened("i-1", NOW, "instance running")]),
    ("launch time before the last stop: opens at the stop", [], [Instance("i-1", "running", launched_at=ago(900))],
     {"i-1": ago(100)}, [opened("i-1", ago(100), "instance running")]),
    ("launch time after now (clock skew): opens now", [],
     [Instance("i-1", "running", launched_at=NOW + timedelta(seconds=3))], {}, [opened("i-1", NOW, "instance running")]),
    ("spot instance: the run says so", [], [PoolInstance("i-1", "running", "g6e.4xlarge", ago(60), market="spot")], {},
     [opened("i-1", ago(60), "instance running", "g6e.4xlarge", "spot")]),
    ("stopped, no run: nothing", [], [Instance("i-1", "stopped", launched_at=ago(600))], {}, []),
    ("stopping, no run: nothing", [], [Instance("i-1", "stopping", launched_at=ago(600))], {}, []),
    ("running with its open run: nothing", [R], [Instance("i-1", "running", launched_at=ago(600))], {}, []),
    ("pending with its open run: nothing", [R], [Instance("i-1", "pending", launched_at=ago(600))], {}, []),
    ("run opened after the launch (at a stop): nothing", [R],
     [Instance("i-1", "running", launched_at=ago(700))], {}, []),
    ("stopping: closes now", [R], [Instance("i-1", "stopping", launched_at=ago(600))], {},
     [closed(R, NOW, "instance stopping")]),
    ("stopped: closes now", [R], [Instance("i-1", "stopped", launched_at=ago(600))], {},
     [closed(R, NOW, "instance stopped")]),
    ("shutting down: closes now", [R], [Instance("i-1", "shutting-down", launched_at=ago(600))], {},
     [closed(R, NOW, "instance shutting-down")]),
    ("terminated: closes now", [R], [Instance("i-1", "terminated", launched_at=ago(600))], {},
     [closed(R, NOW, "instance terminated")]),
    ("missing: closes now", [R], [], {}, [closed(R, NOW, "instance no longer in the pool")]),
    ("restarted between two looks: closes at the new launch, opens there", [R],
     [Instance("i-1", "running", launched_at=ago(60))], {},
     [closed(R, ago(60), f"instance restarted at {ago(60):%Y-%m-%dT%H:%M:%S.%fZ}"),
      opened("i-1", ago(60), "instance running")]),
    ("a run that opened after now closes at its own start", [run(started=NOW + timedelta(seconds=2))],
     [Instance("i-1", "stopped")], {},
     [closed(run(started=NOW + timedelta(seconds=2)), NOW + timedelta(seconds=2), "instance stopped")]),
    ("several instances, by id", [run("i-2"), run("i-3")],
     [Instance("i-1", "running", launched_at=ago(10)), Instance("i-2", "stopped"),
      Instance("i-3", "running", launched_at=ago(600))],
     {}, [closed(run("i-2"), NOW, "instance stopped"), opened("i-1", ago(10), "instance running")]),
]


@pytest.mark.parametrize("name, open_runs, instances, last_stopped, expected", CASES, ids=[c[0] for c in CASES])
def test_reconcile_actions(name, open_runs, instances, last_stopped, expected):
    assert reconcile_actions(open_runs, instances, NOW, last_stopped) == expected


def test_reconciled_actions_applied_reconcile_to_nothing():
    """Applying the actions and deciding again decides nothing: reconcile is idempotent."""
    instances = [Instance("i-1", "running", launched_at=ago(60)), Instance("i-2", "stopped")]
    open_runs = {r.instance_id: r for r in [run("i-1"), run("i-2")]}
    for action in reconcile_actions(open_runs.values(), instances, NOW):
        if action.kind == "close":
            del open_runs[action.instance_id]
        else:
            open_runs[action.instance_id] = run(action.instance_id, started=action.at)
    assert reconcile_actions(open_runs.values(), instances, NOW) == []


@pytest.mark.parametrize("now, start", [
    (datetime(2026, 6, 17, 8, 30, tzinfo=timezone.utc), datetime(2026, 6, 1, tzinfo=timezone.utc)),
    (datetime(2026, 6, 1, 0, 0, tzinfo=timezone.utc), datetime(2026, 6, 1, tzinfo=timezone.utc)),
    (datetime(2026, 7, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), datetime(2026, 6, 1, tzinfo=timezone.utc)),
])
def test_month_start_is_utc(now, start):
    assert month_start(now) == start


@pytest.mark.parametrize("start, end, months", [
    (datetime(2026, 6, 3, tzinfo=timezone.utc), datetime(2026, 6, 30, tzinfo=timezone.utc), ["2026-06"]),
    (datetime(2025, 11, 30, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc),
     ["2025-11", "2025-12", "2026-01", "2026-02"]),
    (datetime(2026, 6, 3, tzinfo=timezone.utc), datetime(2026, 5, 1, tzinfo=timezone.utc), []),
])
def test_months_between(start, end, months):
    assert months_between(start, end) == months


JUNE = datetime(2026, 6, 1, tzinfo=timezone.utc)


def record(started, stopped, price=2.24, instance_id="i-1"):
    return RunRecord(instance_id, started, stopped, "g6e.2xlarge", "on-demand", price)


def at(minutes: float) -> datetime:
    return JUNE + timedelta(minutes=minutes)


SPEND = [
    ("ten minutes", [record(at(10), at(20))], 600 * 2.24 / 3600),
    ("ten seconds are billed as sixty", [record(at(10), at(10 + 1 / 6))], 60 * 2.24 / 3600),
    ("a run from last month counts from the month's start, without a minimum",
     [record(at(-60), at(1 / 6))], 10 * 2.24 / 3600),
    ("an open run counts up to now", [record(at(50), None)], 600 * 2.24 / 3600),
    ("each run at its own price", [record(at(0), at(60)), record(at(0), at(60), price=4.48, instance_id="i-2")],
     2.24 + 4.48),
    ("a run after the period is not counted", [record(at(61), at(70))], 0.0),
]


@pytest.mark.parametrize("name, records, dollars", SPEND, ids=[c[0] for c in SPEND])
def test_spend(name, records, dollars):
    assert spend(records, JUNE, at(60), now=at(60)) == pytest.approx(dollars)
