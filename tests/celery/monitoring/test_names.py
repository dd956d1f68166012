"""Broadcast names come from one namespace, tell the queue kinds apart, and fit SQS's 80 characters."""

import uuid

import pytest

from gpuorch.celery.monitoring.names import BroadcastNames, node_queue_name, reply_queue_name
from gpuorch.settings import Settings, SettingsError

NAMES = BroadcastNames("ns")


def test_every_name_comes_from_the_namespace():
    assert NAMES.events_exchange == NAMES.event_queue_prefix == "ns.events"
    assert NAMES.control_exchange == "ns"
    assert NAMES.pidbox_exchange == "ns.pidbox" and NAMES.reply_exchange == "ns.reply"
    assert NAMES.fanout_exchanges == ("ns.events", "ns.pidbox")
    assert reply_queue_name(NAMES.reply_exchange, "abc") == "ns.reply.abc"
    assert node_queue_name(NAMES.control_exchange, "gpu@host") == "ns.pidbox.gpu@host"


@pytest.mark.parametrize("queue,broadcast,per_process,reply", [
    ("ns.events.6f1c", True, True, False),            # Flower's receiver
    ("ns.reply.0a1b", True, True, True),              # one remote-control call
    ("ns.pidbox.gpu@ip-10-0-0-1", True, False, False),  # a worker's, kept across restarts
    ("gpu_tasks_queue", False, False, False),         # the task queues are never broadcast queues
    ("gpu_control_queue", False, False, False),
    ("other.events.6f1c", False, False, False),       # another deployment's
    ("ns.eventsx.1", False, False, False),
])
def test_queue_kinds(queue, broadcast, per_process, reply):
    assert NAMES.is_broadcast_queue(queue) is broadcast
    assert NAMES.is_per_process(queue) is per_process
    assert NAMES.is_reply_queue(queue) is reply


@pytest.mark.parametrize("namespace", ["", "a.b", "with space", "x" * 31, "ünï"])
def test_a_namespace_sqs_or_sns_would_refuse_is_refused(namespace):
    with pytest.raises(ValueError):
        BroadcastNames(namespace)
    with pytest.raises(SettingsError, match="GPUORCH_MONITORING_NAMESPACE"):
        Settings.from_env({"GPUORCH_MONITORING_NAMESPACE": namespace})


def test_the_longest_names_fit_sqs():
    names = BroadcastNames("x" * 30)
    assert len(f"{names.event_queue_prefix}.{uuid.uuid4()}") <= 80  # Celery's receiver queue
    assert len(reply_queue_name(names.reply_exchange, uuid.uuid4().hex)) <= 80


def test_a_long_host_name_still_gives_a_distinct_pidbox_queue_within_80_characters():
    host = "gpu@ip-172-31-22-123.eu-central-1.compute.internal"
    other = host.replace("123", "124")
    first, second = node_queue_name("x" * 30, host), node_queue_name("x" * 30, other)
    assert len(first) == len(second) == 80
    assert first != second and first == node_queue_name("x" * 30, host)
    assert first.startswith(f"{'x' * 30}.pidbox.gpu@ip-172")
