"""The GPU queues' depth as an API process reuses it: the backlog limit reads it when it is old, an estimate never
waits for it but the first time."""

from __future__ import annotations

import threading

from gpuorch.aws.sqs import IN_FLIGHT, VISIBLE
from gpuorch.access.backlog import BacklogGauge
from tests.conftest import wait_for


class FakeSqs:
    """GetQueueAttributes answering `depth` visible messages per queue, each call counted (and held while `gate` is
    closed)."""

    def __init__(self):
        self.depth, self.calls = 1, 0
        self.gate = threading.Event()
        self.gate.set()

    def get_queue_attributes(self, QueueUrl, AttributeNames):  # noqa: N803 - boto3's names
        self.gate.wait(10)
        self.calls += 1
        return {"Attributes": {VISIBLE: str(self.depth), IN_FLIGHT: "0"}}


def gauge(sqs, now, ttl_s=2.0):
    return BacklogGauge(sqs, lambda: ["normal", "low"], ttl_s=ttl_s, monotonic=lambda: now[0])


def test_an_estimate_reads_the_depth_once_then_answers_the_last_one_while_a_thread_reads_the_next():
    sqs, now = FakeSqs(), [0.0]
    depths = gauge(sqs, now)
    assert depths.recent_depth() == 2 and sqs.calls == 2  # the first: read at once (both queues)
    sqs.depth, now[0] = 5, 3.0
    sqs.gate.clear()  # SQS slow: the estimate does not wait for it
    assert depths.recent_depth() == 2
    assert depths.recent_depth() == 2 and sqs.calls == 2
    sqs.gate.set()
    wait_for(lambda: depths.recent_depth() == 10, 5, interval=0.01, message="the refreshed depth")
    assert sqs.calls == 4


def test_the_backlog_limit_reads_an_old_depth_before_deciding():
    sqs, now = FakeSqs(), [0.0]
    depths = gauge(sqs, now)
    assert depths.depth() == 2
    sqs.depth, now[0] = 5, 3.0
    assert depths.depth() == 10 and sqs.calls == 4


def test_with_a_ttl_of_0_every_estimate_reads_the_depth():
    sqs, now = FakeSqs(), [0.0]
    depths = gauge(sqs, now, ttl_s=0)
    depths.recent_depth()
    sqs.depth = 3
    assert depths.recent_depth() == 6 and sqs.calls == 4
