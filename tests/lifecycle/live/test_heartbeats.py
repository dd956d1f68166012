"""GPU worker heartbeats in the control table (moto server)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gpuorch.aws.dynamodb import encode_item
from lifecycle.live.heartbeats import HeartbeatStore, WorkerReport, last_activity
from lifecycle.live.instance_items import HEARTBEAT, item_key
from lifecycle.model import Heartbeat
from workers.heartbeat import Heartbeat as WorkerHeartbeat



@pytest.fixture
def store(dynamodb, control_table, clock, instance_arn):
    return HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock, instance_arn=instance_arn)


def test_a_beat_reads_back_as_a_heartbeat_with_its_last_busy_moment(store, clock):
    busy = clock() - timedelta(seconds=5)
    assert store.beat("i-0aaa", ["job-1", "job-2"], True, busy)
    store.beat("i-0bbb", [], False)
    assert store.all() == (
        WorkerReport(Heartbeat("i-0aaa", clock(), ("job-1", "job-2"), True), busy),
        WorkerReport(Heartbeat("i-0bbb", clock(), (), False), None),
    )
    assert store.heartbeats() == tuple(r.heartbeat for r in store.all())
    assert last_activity(store.all()) == {"i-0aaa": busy}


def test_the_latest_beat_replaces_the_previous_one(store, clock):
    store.beat("i-0aaa", ["job-1"], True, clock())
    first_busy = clock()
    clock.advance(15)
    store.beat("i-0aaa", [], True)  # no last_busy_at: the stored one stays
    (report,) = store.all()
    assert report.heartbeat == Heartbeat("i-0aaa", clock(), (), True)
    assert report.last_busy_at == first_busy


def test_a_delayed_older_beat_changes_nothing(dynamodb, control_table, clock, instance_arn):
    early = HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=lambda: clock() - timedelta(seconds=10),
                           instance_arn=instance_arn)
    store = HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock, instance_arn=instance_arn)
    assert store.beat("i-0aaa", ["job-2"], True)
    assert not early.beat("i-0aaa", ["job-1"], True)
    assert store.all()[0].heartbeat.running_jobs == ("job-2",)


def test_a_dead_worker_vanishes_after_the_ttl(store, dynamodb, control_table, clock, instance_arn):
    store.beat("i-0aaa", [], True)
    key = encode_item(item_key(HEARTBEAT, instance_arn("i-0aaa")))
    item = dynamodb.get_item(TableName=control_table, Key=key)["Item"]
    assert int(item["expires_at"]["N"]) == int(clock().timestamp()) + 120  # the table's TTL attribute
    clock.advance(119)
    assert len(store.all()) == 1
    clock.advance(1)
    assert store.all() == ()  # before DynamoDB's own TTL deletion, which can lag


def test_ttl_must_be_positive(dynamodb, control_table):
    with pytest.raises(ValueError):
        HeartbeatStore(dynamodb, control_table, ttl_s=0)


def test_the_worker_heartbeat_records_when_comfyui_last_answered(store, clock):
    answers = [True]
    beat = WorkerHeartbeat(store, "i-0aaa", 15, running_jobs=lambda: (), clock=clock,
                           comfyui_alive=lambda: answers[-1])
    beat.beat()
    answered = clock()
    clock.advance(15)
    answers.append(False)  # ComfyUI stops answering: the heartbeat goes on, the last answer stays
    beat.beat()

    (report,) = store.all()
    assert (report.heartbeat.at, report.comfyui_at) == (clock(), answered)


def test_an_interruption_notice_is_said_at_once_and_forgotten_by_the_next_run(store, clock):
    worker = WorkerHeartbeat(store, "i-0aaa", 15, running_jobs=lambda: ("job-1",), clock=clock)
    worker.beat()
    notice = clock() + timedelta(minutes=2)
    worker.interrupted(notice)
    assert store.all()[0].heartbeat.interruption_at == notice
    clock.advance(15)
    worker.beat()  # later beats keep saying it
    assert store.all()[0].heartbeat.interruption_at == notice
    clock.advance(600)
    WorkerHeartbeat(store, "i-0aaa", 15, running_jobs=lambda: (), clock=clock).beat()  # the instance's next run
    assert store.all()[0].heartbeat.interruption_at is None
