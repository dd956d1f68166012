"""Events published from a thread of their own: sending never waits on SNS, they go out in order, a close waits."""

from __future__ import annotations

import threading

from gpuorch.celery.monitoring.background import BackgroundPublisher


class SlowSns:
    """A publish that holds each call until let go, recording what it was given."""

    def __init__(self):
        self.published: list[tuple] = []
        self.go = threading.Event()

    def __call__(self, *args, **kwargs):
        self.go.wait(10)
        if args and args[0] == "fail":
            raise RuntimeError("SNS refused")
        self.published.append((args, kwargs))


def test_submitting_returns_while_sns_is_still_answering_and_a_flush_waits_for_it():
    sns = SlowSns()
    publisher = BackgroundPublisher(sns, name="test-events")
    for i in range(3):
        assert publisher.submit("events", {"n": i}, "key", x=i)
    assert not publisher.flush(0.05)  # the first is still in SNS's hands
    assert sns.published == []
    sns.go.set()
    assert publisher.flush(5)
    assert sns.published == [(("events", {"n": i}, "key"), {"x": i}) for i in range(3)]  # in the order sent


def test_a_failed_publish_is_logged_and_the_next_goes_out(caplog):
    sns = SlowSns()
    sns.go.set()
    publisher = BackgroundPublisher(sns, name="test-events")
    publisher.submit("fail")
    publisher.submit("events", {"n": 1}, "key")
    assert publisher.flush(5)
    assert sns.published == [(("events", {"n": 1}, "key"), {})]
    assert "an event was not published: SNS refused" in caplog.text


def test_past_its_capacity_an_event_is_dropped_not_waited_for(caplog):
    sns = SlowSns()
    publisher = BackgroundPublisher(sns, name="test-events", capacity=2)
    results = [publisher.submit("events", {"n": i}, "key") for i in range(5)]
    # One is taken by the thread (held in SNS), two wait: the rest are dropped.
    assert results.count(False) in (2, 3) and publisher.dropped == results.count(False)
    assert "dropped" in caplog.text
    sns.go.set()
    assert publisher.flush(5)


def test_an_idle_thread_goes_and_the_next_event_starts_another():
    sns = SlowSns()
    sns.go.set()
    publisher = BackgroundPublisher(sns, name="test-events", idle_s=0.05)
    publisher.submit("events", {"n": 1}, "key")
    assert publisher.flush(5)
    first = publisher._thread
    first.join(5)
    assert not first.is_alive() and publisher._thread is None
    publisher.submit("events", {"n": 2}, "key")
    assert publisher.flush(5)
    assert [args[1]["n"] for args, _ in sns.published] == [1, 2]
