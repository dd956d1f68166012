"""The heartbeats and refusals keyed by instance ARN, and how their readers find them: through the sparse index and
consistent batch reads of the table, never a scan (moto server)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gpuorch.aws.dynamodb import decode_item
from lifecycle.live.heartbeats import HeartbeatStore
from lifecycle.live.instance_items import (HEARTBEAT, REFUSAL, UNPROCESSED_ATTEMPTS, UnreadItems, item_key, item_keys,
                                           read_items)
from lifecycle.live.lease import Lease
from lifecycle.live.market import MarketMemory
from lifecycle.live.refusals import RefusalStore
from lifecycle.model import Refusal, SpotSetback
from tests.lifecycle.live.conftest import Ec2Proxy

AT = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
MOTO_ACCOUNT = "123456789012"  # what the moto server's STS answers GetCallerIdentity with


class Unprocessed(Ec2Proxy):
    """The moto server's DynamoDB client, whose BatchGetItem reads only the first `processed` keys and leaves the
    others unprocessed, the first `times` calls (as DynamoDB does when it throttles a batch)."""

    def __init__(self, real, times: int, processed: int = 1):
        super().__init__(real)
        self.times, self.processed = times, processed

    def intercept(self, name, method, kwargs):
        if name != "batch_get_item" or self.times == 0:
            return method(**kwargs)
        self.times -= 1
        [(table, wanted)] = kwargs["RequestItems"].items()
        read, rest = wanted["Keys"][:self.processed], wanted["Keys"][self.processed:]
        answer = method(RequestItems={table: {**wanted, "Keys": read}}) if read else {"Responses": {}}
        answer["UnprocessedKeys"] = {table: {**wanted, "Keys": rest}} if rest else {}
        return answer


def test_an_instance_item_is_keyed_by_the_instance_arn_iam_names_its_requests_with(instance_arn):
    arn = instance_arn("i-0123456789abcdef0")
    assert arn == f"arn:aws:ec2:us-east-1:{MOTO_ACCOUNT}:instance/i-0123456789abcdef0"
    assert item_key(HEARTBEAT, arn) == {"pk": f"heartbeat#{arn}", "sk": "i-0123456789abcdef0"}
    assert item_key(REFUSAL, arn) == {"pk": f"refusal#{arn}", "sk": "i-0123456789abcdef0"}


def test_the_index_lists_heartbeats_and_refusals_only_and_readers_never_scan(dynamodb, control_table, instance_arn,
                                                                            clock):
    beats = HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock, instance_arn=instance_arn)
    refusals = RefusalStore(dynamodb, control_table, instance_arn=instance_arn)
    for instance_id in ("i-0aaa", "i-0bbb"):
        beats.beat(instance_id, [], True)
    refusals.record(Refusal("i-0bbb", AT, ("no vae",), "f" * 64))
    # The table's other items, one of them with a "kind" attribute of its own: none of them is in the index.
    MarketMemory(dynamodb, control_table).record_setback("i-0aaa", SpotSetback("refused", AT, "no capacity"))
    Lease(dynamodb, control_table, "lifecycle", owner="test", ttl_s=60).acquire()

    assert sorted(decode_item(key)["sk"] for key in item_keys(dynamodb, control_table, HEARTBEAT)) == [
        "i-0aaa", "i-0bbb"]
    assert [decode_item(key) for key in item_keys(dynamodb, control_table, REFUSAL)] == [
        item_key(REFUSAL, instance_arn("i-0bbb"))]

    recording = Ec2Proxy(dynamodb)
    reports = HeartbeatStore(recording, control_table, ttl_s=120, clock=clock).all()
    stored = RefusalStore(recording, control_table, instance_arn=instance_arn).all()
    assert [r.heartbeat.instance_id for r in reports] == ["i-0aaa", "i-0bbb"]
    assert [s.refusal.instance_id for s in stored] == ["i-0bbb"]
    assert recording.calls == ["query", "batch_get_item"] * 2  # the index, then the items: no scan


def test_an_item_deleted_since_the_index_listed_it_is_not_read(dynamodb, control_table, instance_arn):
    refusals = RefusalStore(dynamodb, control_table, instance_arn=instance_arn)
    refusals.record(Refusal("i-0aaa", AT, ("no vae",), "f" * 64))
    listed = list(item_keys(dynamodb, control_table, REFUSAL))
    refusals.release("i-0aaa")
    found = dynamodb.batch_get_item(RequestItems={control_table: {"Keys": listed, "ConsistentRead": True}})
    assert found["Responses"][control_table] == [] and refusals.all() == ()


def test_keys_left_unprocessed_are_asked_again_after_a_pause(dynamodb, control_table, instance_arn, clock):
    beats = HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock, instance_arn=instance_arn)
    for instance_id in ("i-0aaa", "i-0bbb", "i-0ccc"):
        beats.beat(instance_id, [], True)
    pauses: list[float] = []

    items = read_items(Unprocessed(dynamodb, times=2), control_table, HEARTBEAT, sleep=pauses.append)

    assert sorted(decode_item(item)["sk"] for item in items) == ["i-0aaa", "i-0bbb", "i-0ccc"]
    assert pauses == [0.05, 0.1]


def test_keys_that_stay_unprocessed_fail_the_read(dynamodb, control_table, instance_arn, clock):
    beats = HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock, instance_arn=instance_arn)
    beats.beat("i-0aaa", [], True)
    beats.beat("i-0bbb", [], True)
    pauses: list[float] = []
    throttled = Unprocessed(dynamodb, times=UNPROCESSED_ATTEMPTS, processed=0)

    with pytest.raises(UnreadItems, match="left 2 items"):
        read_items(throttled, control_table, HEARTBEAT, sleep=pauses.append)
    assert len(pauses) == UNPROCESSED_ATTEMPTS


def test_a_store_made_to_read_cannot_beat(dynamodb, control_table, clock):
    with pytest.raises(TypeError, match="only reads"):
        HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock).beat("i-0aaa", [], True)
