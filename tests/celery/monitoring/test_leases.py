"""Per-process queue leases: when one has run out, and the sweep that deletes only those (moto server)."""

from __future__ import annotations

import time
import uuid

import pytest

from gpuorch.celery.monitoring.leases import LEASE_S, LEASE_TAG, expired, lease_tags, sweep

NOW = 1_800_000_000.0


@pytest.mark.parametrize("tags,created_at,is_expired", [
    ({LEASE_TAG: str(int(NOW + 1))}, NOW - 10 * LEASE_S, False),  # renewed: its age does not matter
    ({LEASE_TAG: str(int(NOW))}, NOW, True),                      # runs out at that second
    ({LEASE_TAG: str(int(NOW - 1))}, NOW, True),
    ({}, NOW - LEASE_S + 1, False),                                # never tagged: counts from its creation
    ({}, NOW - LEASE_S, True),
    ({LEASE_TAG: "soon"}, NOW - LEASE_S, True),                    # unreadable: as if never tagged
    ({LEASE_TAG: "soon"}, NOW, False),
])
def test_when_a_lease_has_run_out(tags, created_at, is_expired):
    assert expired(tags, created_at, NOW) is is_expired


def test_a_new_lease_lasts_five_renewal_periods():
    assert lease_tags(NOW) == {LEASE_TAG: str(int(NOW + LEASE_S))}


class DeletedMeanwhile:
    """The moto server's SQS client; one queue is deleted, as by another sweeper, just before its tags are read."""

    def __init__(self, sqs, url: str):
        self.sqs, self.url = sqs, url

    def __getattr__(self, name):
        return getattr(self.sqs, name)

    def list_queue_tags(self, QueueUrl):
        if QueueUrl == self.url:
            self.sqs.delete_queue(QueueUrl=QueueUrl)
        return self.sqs.list_queue_tags(QueueUrl=QueueUrl)


def test_the_sweep_deletes_the_expired_queues_of_its_prefixes_only(aws):
    sqs, prefix, now = aws.sqs, f"lease-{uuid.uuid4().hex[:8]}-", time.time()

    def queue(name, tags=None):
        return sqs.create_queue(QueueName=prefix + name, **({"tags": tags} if tags else {}))["QueueUrl"]

    dead = queue("dead", {LEASE_TAG: str(int(now - 1))})
    live = queue("live", {LEASE_TAG: str(int(now + 60))})
    untagged = queue("untagged")  # created a moment ago: its lease counts from now
    garbled = queue("garbled", {LEASE_TAG: "soon"})  # as if untagged
    mine = queue("mine", {LEASE_TAG: str(int(now - 1))})
    vanished = queue("vanished", {LEASE_TAG: str(int(now - 1))})
    elsewhere = sqs.create_queue(QueueName=f"other-{prefix}dead", tags={LEASE_TAG: "0"})["QueueUrl"]

    deleted = sweep(DeletedMeanwhile(sqs, vanished), [prefix], {mine}.__contains__, now)

    assert deleted == [dead]
    left = set(sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"])
    assert left == {live, untagged, garbled, mine}
    assert sweep(sqs, [prefix], {mine}.__contains__, now + 61) == [live]  # its owner stopped renewing it
    assert sorted(sweep(sqs, [prefix], {mine}.__contains__, now + LEASE_S + 1)) == sorted([untagged, garbled])
    sqs.delete_queue(QueueUrl=elsewhere)
