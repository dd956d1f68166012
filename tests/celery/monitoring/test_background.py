"""Events published from a thread of their own: sending never waits on SNS, they go out in order and a few per
call, a close waits for them."""

from __future__ import annotations

import threading
import time

from gpuorch.celery.monitoring.background import BackgroundPublisher


class SlowSns:
    """A batch publish that holds each call until let go, recording each batch it was given."""

    def __init__(self):
        self.batches: list[list] = []
        self.go = threading.Event()

    def __call__(self, items):
        self.go.wait(10)
        if any(args and args[0] == "fail" for args, _ in items):
            raise RuntimeError("SNS refused")
        self.batches.append(items)

    @property
    def published(self) -> list:
        return [item for batch in self.batches for item in batch]


def test_submitting_returns_while_sns_is_still_answering_and_a_flush_waits_for_it():
    sns = SlowSns()
    publisher = BackgroundPublisher(sns, name="test-events", linger_s=0)
    for i in range(3):
        assert publisher.submit({"n": i}, x=i)
    assert not publisher.flush(0.05)  # the first is still in SNS's hands
    assert sns.published == []
    sns.go.set()
    assert publisher.flush(5)
    assert sns.published == [(({"n": i},), {"x": i}) for i in range(3)]  # in the order sent


def test_events_sent_together_go_in_one_call_of_at_most_the_batch():
    sns = SlowSns()
    sns.go.set()
    publisher = BackgroundPublisher(sns, name="test-events", batch=3, linger_s=0.5)
    began = time.monotonic()
    for i in range(4):
        publisher.submit(i)
    assert publisher.flush(5)
    assert [[args[0] for args, _ in batch] for batch in sns.batches] == [[0, 1, 2], [3]]
    # A full batch goes at once; the last waited out its linger for company.
    assert 0.4 < time.monotonic() - began < 3


def test_a_failed_publish_is_logged_and_the_next_goes_out(caplog):
    sns = SlowSns()
    sns.go.set()
    publisher = BackgroundPublisher(sns, name="test-events", linger_s=0)
    publisher.submit("fail")
    assert publisher.flush(5)
    publisher.submit({"n": 1})
    assert publisher.flush(5)
    assert sns.published == [(({"n": 1},), {})]
    assert "1 event(s) not published: SNS refused" in caplog.text


def test_past_its_capacity_an_event_is_dropped_not_waited_for(caplog):
    sns = SlowSns()
    publisher = BackgroundPublisher(sns, name="test-events", capacity=2, batch=1, linger_s=0)
    results = [publisher.submit({"n": i}) for i in range(5)]
    # One is taken by the thread (held in SNS), two wait: the rest are dropped.
    assert results.count(False) in (2, 3) and publisher.dropped == results.count(False)
    assert "dropped" in caplog.text
    sns.go.set()
    assert publisher.flush(5)


def test_an_idle_thread_goes_and_the_next_event_starts_another():
    sns = SlowSns()
    sns.go.set()
    publisher = BackgroundPublisher(sns, name="test-events", idle_s=0.05, linger_s=0)
    publisher.submit(1)
    assert publisher.flush(5)
    first = publisher._thread
    first.join(5)
    assert not first.is_alive() and publisher._thread is None
    publisher.submit(2)
    assert publisher.flush(5)
    assert [args[0] for args, _ in sns.published] == [1, 2]
