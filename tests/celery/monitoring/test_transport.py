"""The SNS transport on the moto server: events fan out, replies find their caller, a process's queues go with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial

import pytest
from kombu import Consumer
from kombu.exceptions import ChannelError

from gpuorch.aws.sqs import QueueDepth, queue_depth
from gpuorch.celery.monitoring import transport
from gpuorch.celery.monitoring.leases import LEASE_TAG
from gpuorch.settings import settings_env
from gpuorch_dev.local.paths import CHECKOUT
from tests.celery.monitoring.conftest import drain_until


def consume_events(app, connection, got: list):
    """Start consuming events exactly as Flower does (its receiver's queue and consumer), on `connection`."""
    receiver = app.events.Receiver(connection, handlers={"*": got.append})
    channel = connection.default_channel
    [consumer] = receiver.get_consumers(partial(Consumer, channel), channel)
    consumer.consume()
    return consumer


def test_an_event_reaches_every_receiver_and_no_task_queue(app, broadcasts, names, monitored, aws):
    got_one, got_two = [], []
    with app.connection_for_read() as one, app.connection_for_read() as two:
        consume_events(app, one, got_one)
        consume_events(app, two, got_two)
        receivers = broadcasts.queues("events-")
        assert len(receivers) == 2
        assert broadcasts.subscriptions() == sorted((f"{names.namespace}-events", q) for q in receivers)

        with app.events.default_dispatcher(hostname="gpu@test") as dispatcher:
            dispatcher.send("worker-heartbeat", freq=2.0, active=0)
        drain_until(one, lambda: got_one)
        drain_until(two, lambda: got_two)

        # Consumed without acknowledgement, and deleted at once without kombu's event loop, not merely hidden.
        assert [broadcasts.counts(q) for q in receivers] == [(0, 0), (0, 0)]
    for got in (got_one, got_two):
        assert [(e["type"], e["hostname"], e["freq"]) for e in got] == [("worker-heartbeat", "gpu@test", 2.0)]
    for queue in (monitored.gpu_queue, monitored.control_queue):
        assert queue_depth(aws.sqs, aws.queue_url(queue)) == QueueDepth(visible=0, in_flight=0)
    assert broadcasts.queues() == [] and broadcasts.subscriptions() == []  # closed: both went with it


def test_a_restarted_receiver_leaves_nothing_of_the_first(app, broadcasts, names):
    with app.connection_for_read() as first:
        consume_events(app, first, [])
        before = broadcasts.queues(), broadcasts.subscriptions()
    with app.connection_for_read() as second:
        consume_events(app, second, [])
        after = broadcasts.queues(), broadcasts.subscriptions()
    assert len(before[0]) == len(after[0]) == 1 and before[0] != after[0]
    assert after[1] == [(f"{names.namespace}-events", after[0][0])]
    assert broadcasts.queues() == [] and broadcasts.subscriptions() == []


def test_inspect_reaches_a_worker_and_its_reply_finds_the_caller(app, broadcasts, names):
    listening, stop = threading.Event(), threading.Event()

    def worker():
        with app.connection_for_read() as connection:
            node = app.control.mailbox.Node("w1@test", handlers={"ping": lambda state: "pong"},
                                            channel=connection.default_channel)
            node.listen()
            listening.set()
            while not stop.is_set():
                try:
                    connection.drain_events(timeout=0.5)
                except socket.timeout:
                    pass

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        assert listening.wait(15)
        assert app.control.broadcast("ping", reply=True, timeout=10, limit=1) == [{"w1@test": "pong"}]
        assert broadcasts.queues("reply-") == []  # the call's reply queue went when the call was over
        node_queue = [f"{names.namespace}-pidbox-w1_test"]
        assert broadcasts.queues() == node_queue
        assert broadcasts.subscriptions() == [(f"{names.namespace}-pidbox", node_queue[0])]
    finally:
        stop.set()
        thread.join(15)
    assert broadcasts.queues() == node_queue  # kept, for the worker's restart


def test_a_reply_to_a_caller_that_gave_up_is_dropped_without_creating_its_queue(app, broadcasts, names):
    with app.connection_for_write() as connection:
        node = app.control.mailbox.Node("w1@test", channel=connection.default_channel)
        node.reply({"w1@test": "late"}, exchange=names.reply_exchange, routing_key="gone", ticket="t1")
    assert broadcasts.queues() == []


def test_a_workers_kept_pidbox_queue_is_taken_up_as_it_is(app, broadcasts, names, aws):
    # As kombu's own transport left it before gpuorch's: other attributes than gpuorch would create it with.
    name = f"{names.namespace}-pidbox-w2_test"
    aws.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "300"})
    with app.connection_for_read() as connection:
        app.control.mailbox.Node("w2@test", channel=connection.default_channel).listen()
        assert broadcasts.subscriptions() == [(f"{names.namespace}-pidbox", name)]
    assert broadcasts.queues() == [name]


RECEIVER = """
import sys, time
from functools import partial
from kombu import Consumer
from gpuorch.celery.app import create_celery_app
from gpuorch.settings import Settings
app = create_celery_app(Settings.from_env())
connection = app.connection_for_read()
channel = connection.default_channel
[consumer] = app.events.Receiver(connection).get_consumers(partial(Consumer, channel), channel)
consumer.consume()
print(consumer.queues[0].name, flush=True)
if sys.argv[1] == "exit":
    sys.exit(0)  # the connection left open, as Flower's event thread leaves it
time.sleep(600)
"""


def start_receiver_process(monitored, how: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, how], cwd=CHECKOUT, env={**os.environ, **settings_env(monitored)},
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline().strip(), "the receiver process did not start"
    return process


def test_a_process_that_exits_deletes_its_queue_and_subscription(monitored, broadcasts):
    process = start_receiver_process(monitored, "exit")
    assert process.wait(30) == 0
    assert broadcasts.queues() == [] and broadcasts.subscriptions() == []


def test_a_killed_receivers_queue_is_swept_once_its_lease_runs_out(app, monitored, broadcasts, aws, monkeypatch):
    process = start_receiver_process(monitored, "wait")
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    [dead] = broadcasts.queues()
    assert len(broadcasts.subscriptions()) == 1

    # Five minutes without a renewal, in the lease's own terms; and a process that has not swept yet.
    aws.sqs.tag_queue(QueueUrl=broadcasts.url(dead), Tags={LEASE_TAG: str(int(time.time()) - 1)})
    monkeypatch.setattr(transport, "_owners", transport._Owners())
    with app.connection_for_read() as connection:
        consume_events(app, connection, [])
        [alive] = broadcasts.queues()
        assert alive != dead
        assert [queue for _, queue in broadcasts.subscriptions()] == [alive]


def test_an_exiting_process_creates_no_more_queues(app, broadcasts, monkeypatch):
    monkeypatch.setattr(transport, "_owners", transport._Owners())
    with app.connection_for_read() as connection:
        consume_events(app, connection, [])
        transport._owners.release_all()  # what runs at exit
        assert broadcasts.queues() == []
        with app.connection_for_read() as late, pytest.raises(ChannelError, match="exiting"):
            consume_events(app, late, [])
    assert broadcasts.queues() == []


def test_an_event_is_published_off_the_thread_that_sends_it(app, names):
    """A worker's event loop queues its events and goes on (to hand the job to its pool); a thread publishes them."""
    held, published = threading.Event(), []

    def slow_sns(events):
        held.wait(10)
        published.extend(message["body"] for (message,), _ in events)

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel._events = transport.BackgroundPublisher(slow_sns, name="test-events")
        began = time.monotonic()
        channel._put_fanout(names.events_exchange, {"body": "{}"}, "worker.heartbeat")
        assert time.monotonic() - began < 1 and published == []
        held.set()
        assert channel._events.flush(5)
    assert published == ["{}"]
