"""Instance runs in the control table (moto server): reconcile, idempotent writes, runs of a period, month spend."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from lifecycle import billing
from gpuorch_dev.local.instances import create_local_instance
from lifecycle.live.pool import InstancePool, PoolInstance
from lifecycle.model import Instance
from lifecycle.live.runs import HEAD_PK, RunLog, RunRecord

from tests.lifecycle.live.conftest import Clock

JUNE = datetime(2026, 6, 1, tzinfo=timezone.utc)
PRICES = {"g6e.2xlarge": 2.24, "g6e.4xlarge": 3.0}


@pytest.fixture
def june_clock() -> Clock:
    return Clock(JUNE + timedelta(hours=12))


@pytest.fixture
def log(dynamodb, control_table, june_clock):
    return RunLog(dynamodb, control_table, prices=PRICES, clock=june_clock)


def running(instance_id="i-1", launched=None, kind="g6e.2xlarge", **kwargs):
    return PoolInstance(instance_id, "running", kind, launched, **kwargs)


def test_a_run_opens_at_launch_and_closes_when_stopped(log, june_clock):
    launched = june_clock() - timedelta(minutes=5)
    assert log.reconcile([running(launched=launched)]) == [
        f"open run of i-1 at {launched:%Y-%m-%dT%H:%M:%S.%fZ}: instance running"]
    assert log.reconcile([running(launched=launched)]) == []  # nothing changed
    june_clock.advance(600)
    assert len(log.reconcile([Instance("i-1", "stopped", launched_at=launched)])) == 1
    assert log.reconcile([Instance("i-1", "stopped", launched_at=launched)]) == []
    assert log.records(JUNE, june_clock()) == (
        RunRecord("i-1", launched, june_clock(), "g6e.2xlarge", "on-demand", 2.24),)


def test_an_open_run_is_in_the_records_until_now(log, june_clock):
    launched = june_clock() - timedelta(minutes=5)
    log.reconcile([running(launched=launched, kind="g6e.4xlarge", market="spot")])
    (record,) = log.records(JUNE, june_clock())
    assert record == RunRecord("i-1", launched, None, "g6e.4xlarge", "spot", 3.0)
    assert log.runs(JUNE, june_clock()) == (billing.Run("i-1", launched.timestamp(), june_clock().timestamp()),)


def test_a_spot_run_opens_at_the_spot_price_read_for_it(log, june_clock):
    launched = june_clock() - timedelta(minutes=5)
    log.reconcile([running(launched=launched, market="spot")], spot_prices={"i-1": 0.81})
    (record,) = log.records(JUNE, june_clock())
    assert (record.market, record.hourly_usd) == ("spot", 0.81)


def test_an_interrupted_run_says_so_once_closed(log, june_clock):
    launched = june_clock() - timedelta(minutes=5)
    assert not log.mark_interrupted("i-1", june_clock())  # no run is open
    log.reconcile([running(launched=launched, market="spot")], spot_prices={"i-1": 0.81})
    notice = june_clock() + timedelta(minutes=2)
    assert not log.mark_interrupted("i-1", launched - timedelta(seconds=1))  # before the run: not this run's
    assert log.mark_interrupted("i-1", notice)
    assert not log.mark_interrupted("i-1", notice)  # once
    (open_run,) = log.records(JUNE, june_clock())
    assert open_run.interrupted_at == notice
    june_clock.advance(120)
    log.reconcile([Instance("i-1", "stopped", launched_at=launched, market="spot")])
    (closed,) = log.records(JUNE, june_clock())
    assert (closed.stopped_at, closed.interrupted_at) == (june_clock(), notice)
    # The next run of the same instance starts clean.
    june_clock.advance(60)
    log.reconcile([running(launched=launched, market="spot")])
    assert log.records(JUNE, june_clock())[-1].interrupted_at is None


def test_a_restart_after_a_stop_opens_a_new_run_not_before_the_stop(log, june_clock):
    """moto keeps an instance's first LaunchTime across restarts: the new run must not overlap the old."""
    launched = june_clock() - timedelta(hours=1)
    log.reconcile([running(launched=launched)])
    stop = june_clock.advance(60)
    log.reconcile([Instance("i-1", "stopped", launched_at=launched)])
    june_clock.advance(60)
    log.reconcile([running(launched=launched)])
    first, second = log.records(JUNE, june_clock())
    assert (first.started_at, first.stopped_at) == (launched, stop)
    assert (second.started_at, second.stopped_at) == (stop, None)


def test_two_checks_on_the_same_view_write_each_run_once(dynamodb, control_table, june_clock):
    """The second writer acts on a view the first already changed: its conditional writes change nothing."""
    first = RunLog(dynamodb, control_table, prices=PRICES, clock=june_clock)
    launched = june_clock() - timedelta(minutes=5)
    stale_heads = first.heads()
    assert first.reconcile([running(launched=launched)])

    class Stale(RunLog):
        def heads(self):
            return stale_heads

    second = Stale(dynamodb, control_table, prices=PRICES, clock=june_clock)
    assert second.reconcile([running(launched=launched)]) == []
    june_clock.advance(60)
    stale_heads = first.heads()
    assert first.reconcile([Instance("i-1", "stopped")])
    assert second.reconcile([Instance("i-1", "stopped")]) == []
    assert len(first.records(JUNE, june_clock())) == 1


def test_a_closed_run_keeps_the_price_it_opened_with(dynamodb, control_table, june_clock):
    RunLog(dynamodb, control_table, prices=PRICES, clock=june_clock).reconcile([running(launched=june_clock())])
    june_clock.advance(3600)
    repriced = RunLog(dynamodb, control_table, prices={"g6e.2xlarge": 9.99}, clock=june_clock)
    repriced.reconcile([])
    assert repriced.month_spend() == pytest.approx(2.24)


def test_runs_across_months(log, june_clock, dynamodb, control_table):
    may_end = JUNE - timedelta(minutes=10)
    june_clock.now = may_end - timedelta(minutes=30)
    log.reconcile([running("i-1", launched=june_clock.now)])
    june_clock.now = may_end
    log.reconcile([])  # closed in May, stored under May
    june_clock.now = JUNE - timedelta(minutes=5)
    log.reconcile([running("i-2", launched=june_clock.now)])
    june_clock.now = JUNE + timedelta(minutes=5)
    log.reconcile([running("i-2", launched=JUNE - timedelta(minutes=5)), running("i-3", launched=JUNE)])
    june_clock.now = JUNE + timedelta(minutes=10)
    log.reconcile([running("i-2", launched=JUNE - timedelta(minutes=5))])  # i-3 gone: closed in June

    assert [r.instance_id for r in log.records(JUNE - timedelta(days=1), JUNE)] == ["i-1", "i-2"]
    assert [r.instance_id for r in log.records(JUNE, june_clock())] == ["i-2", "i-3"]
    # June so far: i-2 open for 10 minutes of June (started in May: no minimum); i-3 from its launch at
    # midnight until the check that found it gone, 10 minutes.
    assert log.month_spend() == pytest.approx((600 + 600) * 2.24 / 3600)
    # May: i-1 for 30 minutes, i-2 for its last 5.
    assert log.spend(JUNE - timedelta(days=31), JUNE) == pytest.approx((1800 + 300) * 2.24 / 3600)
    heads = dynamodb.query(TableName=control_table, KeyConditionExpression="pk = :pk",
                           ExpressionAttributeValues={":pk": {"S": HEAD_PK}})["Items"]
    assert sorted(h["sk"]["S"] for h in heads if "started_at" in h) == ["i-2"]


def test_a_start_shorter_than_a_minute_costs_a_minute(log, june_clock):
    log.reconcile([running(launched=june_clock())])
    june_clock.advance(10)
    log.reconcile([Instance("i-1", "stopped")])
    assert log.month_spend() == pytest.approx(60 * 2.24 / 3600)


def test_prices(dynamodb, control_table):
    log = RunLog(dynamodb, control_table, prices=PRICES, spot_prices={"g6e.2xlarge": 0.9})
    assert log.hourly_price("g6e.2xlarge") == 2.24
    assert log.hourly_price("g6e.2xlarge", "spot") == 0.9
    assert log.hourly_price("g6e.4xlarge", "spot") == 3.0  # no spot price: the on-demand one, the most spot costs
    assert log.hourly_price("p5.48xlarge") == 3.0  # unknown: the dearest known, the budget's safe side
    with pytest.raises(ValueError):
        RunLog(dynamodb, control_table, prices={})


def test_the_pool_feeds_the_run_log(ec2, pool_name, dynamodb, control_table):
    """End to end on the moto server: what InstancePool describes is what RunLog reconciles."""
    pool = InstancePool(ec2, pool_name)
    instance_id = create_local_instance(ec2, pool_name)
    clock = Clock(datetime.now(timezone.utc))
    log = RunLog(dynamodb, control_table, prices=PRICES, clock=clock)
    assert log.reconcile(pool.describe()) == []
    pool.start(instance_id)
    assert len(log.reconcile(pool.describe())) == 1
    clock.advance(120)
    pool.stop(instance_id)
    assert len(log.reconcile(pool.describe())) == 1
    (record,) = log.records(clock() - timedelta(days=1), clock())
    assert record.instance_id == instance_id and record.stopped_at == clock()


def test_a_restart_between_two_checks_splits_the_run_at_the_new_launch(log, june_clock):
    first_launch = june_clock() - timedelta(hours=1)
    log.reconcile([running(launched=first_launch)])
    second_launch = june_clock.advance(300) - timedelta(seconds=30)
    assert len(log.reconcile([running(launched=second_launch)])) == 2
    first, second = log.records(JUNE, june_clock())
    assert (first.started_at, first.stopped_at) == (first_launch, second_launch)
    assert (second.started_at, second.stopped_at) == (second_launch, None)
