"""Monthly spend caps: an owner whose GPU spend this month reached its cap is refused 402, with Retry-After until the
month ends, and nothing is recorded or queued; a key may carry its own cap."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from gpuorch.access.spend import SpendCapReached, SpendGauge, cap_for
from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch.jobs.store import JobStore
from lifecycle.live.pool import PoolInstance
from lifecycle.live.runs import RunLog
from tests.conftest import make_key
from tests.webapp.conftest import keyed
from webapp import create_app

# The test's own on-demand prices (lifecycle/prices.py has AWS's, which change): runs keep the price they opened with.
PRICES = {"g6e.2xlarge": 2.24, "g6.2xlarge": 0.978}

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
START = datetime(2026, 6, 10, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def alice_ran_an_hour(provisioned, settings):
    """An hour of the GPU this month ($2.24), all of it alice's job's: alice spent $2.24, bob nothing."""
    clock = lambda: clock.now  # noqa: E731 - a clock the writes below move
    run_log = RunLog(provisioned.aws.dynamodb, settings.control_table, prices=PRICES, clock=clock)
    jobs = JobStore(provisioned.aws.dynamodb, settings.job_table, ttl_seconds=86400 * 60, clock=clock)
    clock.now = START
    run_log.reconcile([PoolInstance("i-a", "running", "g6e.2xlarge", START)])
    jobs.create("a1", "camera-angle", {}, source="api", owner="alice")
    jobs.transition("a1", states.RUNNING)
    clock.now = START + timedelta(minutes=10)
    jobs.transition("a1", states.SUCCEEDED, gpu_seconds=300.0)
    clock.now = START + timedelta(hours=1)
    run_log.reconcile([PoolInstance("i-a", "stopped", "g6e.2xlarge", START)])


def client(settings, token):
    app = create_app(settings, celery_app=create_celery_app(settings), clock=lambda: NOW)
    return keyed(app.test_client(), token)


def submit(client, settings):
    return client.post("/api/v1/camera-angle/jobs",
                       json={"image": f"s3://{settings.bucket}/inputs/house.png", "move": "close_up"})


def test_an_owner_at_its_cap_is_refused_402_until_the_month_ends_and_nothing_is_queued(
        alice_ran_an_hour, settings, provisioned, queues, job_count):
    capped = dataclasses.replace(settings, owner_monthly_cap_usd=2.0)
    before = job_count()

    answer = submit(client(capped, make_key(provisioned, "alice")), capped)

    assert answer.status_code == 402, answer.json
    assert answer.json["error"]["code"] == "spend_cap_reached"
    assert "$2.24" in answer.json["error"]["message"] and "$2.00" in answer.json["error"]["message"]
    assert int(answer.headers["Retry-After"]) == 12 * 3600 + 1  # until July, UTC
    assert (job_count(), queues.total()) == (before, 0)


def test_another_owner_and_a_key_with_its_own_higher_cap_still_submit(alice_ran_an_hour, settings, provisioned):
    capped = dataclasses.replace(settings, owner_monthly_cap_usd=2.0)
    assert submit(client(capped, make_key(provisioned, "bob")), capped).status_code == 202
    generous = make_key(provisioned, "alice", monthly_cap_usd=5.0)
    assert submit(client(capped, generous), capped).status_code == 202


def test_a_key_with_its_own_cap_of_zero_has_none(alice_ran_an_hour, settings, provisioned):
    capped = dataclasses.replace(settings, owner_monthly_cap_usd=2.0)
    assert submit(client(capped, make_key(provisioned, "alice", monthly_cap_usd=0.0)), capped).status_code == 202


@pytest.mark.parametrize("key_cap,default,expected", [(None, 5.0, 5.0), (3.0, 5.0, 3.0), (0.0, 5.0, 0.0),
                                                      (None, 0.0, 0.0)])
def test_the_keys_cap_wins_over_the_deployments(key_cap, default, expected):
    assert cap_for(key_cap, default) == expected


def test_the_spend_is_read_once_per_ttl_and_not_at_all_without_a_cap():
    reads = []
    now = [0.0]
    gauge = SpendGauge(lambda owner: reads.append(owner) or 10.0, ttl_s=60, until_reset=lambda: 3600,
                       monotonic=lambda: now[0])
    gauge.check("alice", 0.0)
    assert reads == []
    with pytest.raises(SpendCapReached) as refused:
        gauge.check("alice", 10.0)
    gauge.check("alice", 20.0)
    now[0] = 61.0
    gauge.check("alice", 20.0)
    assert reads == ["alice", "alice"] and refused.value.retry_after == 3600
