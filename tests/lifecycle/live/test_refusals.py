"""Refusals in the control table (moto server), the configuration fingerprint, and a lifecycle check that stops and
holds an instance that cannot serve."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry

from gpuorch.settings import Settings
from gpuorch.workflows import load_workflows
from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from lifecycle.live.check import StatusStore
from lifecycle.live.heartbeats import HeartbeatStore
from lifecycle.live.metrics import LifecycleMetrics
from lifecycle.live.refusals import RefusalStore, configuration_parts, fingerprint
from lifecycle.model import Policy, Refusal
from tests.lifecycle.live.conftest import Clock
from tests.lifecycle.live.test_check_metrics import make_check, value

AT = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(dynamodb, control_table, instance_arn) -> RefusalStore:
    return RefusalStore(dynamodb, control_table, instance_arn=instance_arn)


def refusal(instance_id: str = "i-0aaa", at: datetime = AT, **fields) -> Refusal:
    return Refusal(instance_id, at, ("camera-angle: the server has no loras file 'x'",), "f" * 64, **fields)


def test_a_refusal_reads_back_with_what_it_was_checked_against(store):
    store.record(refusal(), {"catalogue": "c1", "settings": "s1"})
    store.record(refusal("i-0bbb", source="lifecycle", held_against="conf"))

    first, second = store.all()
    assert first.refusal == refusal() and first.checked == {"catalogue": "c1", "settings": "s1"}
    assert second.refusal == refusal("i-0bbb", source="lifecycle", held_against="conf")
    assert store.refusals() == (refusal(), refusal("i-0bbb", source="lifecycle", held_against="conf"))


def test_a_hold_and_a_clear_touch_only_the_refusal_they_saw(store):
    seen = refusal()
    store.record(seen)
    assert store.hold(dataclasses.replace(seen, held_against="conf-1"))
    assert store.refusals() == (dataclasses.replace(seen, held_against="conf-1"),)

    newer = refusal(at=AT + timedelta(minutes=5))
    store.record(newer)  # the worker refused again meanwhile: held anew, by the next check
    assert not store.hold(dataclasses.replace(seen, held_against="conf-1")) and not store.clear(seen)
    assert store.refusals() == (newer,)
    assert store.clear(newer) and store.refusals() == ()
    assert not store.clear(newer)


def test_an_operator_release_deletes_whatever_refusal_there_is(store):
    store.record(refusal(held_against="conf-1"))
    assert store.release("i-0aaa") == refusal(held_against="conf-1")
    assert store.release("i-0aaa") is None and store.refusals() == ()


def test_the_configuration_changes_with_what_the_checks_read(tmp_path):
    settings = Settings()
    shutil.copytree(BUILTIN_WORKFLOWS, tmp_path / "workflows")
    copied = dataclasses.replace(settings, workflows_dir=str(tmp_path / "workflows"))
    base = fingerprint(configuration_parts(settings, load_workflows()))

    # The same workflows from another folder, and settings the checks do not read: the same configuration.
    assert fingerprint(configuration_parts(copied, load_workflows(copied.workflows_dir))) == base
    assert fingerprint(configuration_parts(dataclasses.replace(settings, log_level="DEBUG"), load_workflows())) == base
    for changed in ({"camera_lora": "other.safetensors"}, {"task_time_limit": 90}, {"visibility_timeout": 900}):
        assert fingerprint(configuration_parts(dataclasses.replace(settings, **changed), load_workflows())) != base
    params = tmp_path / "workflows" / "camera-angle" / "params.json"
    params.write_text(params.read_text().replace('"description"', '"description" ', 1))
    assert fingerprint(configuration_parts(copied, load_workflows(copied.workflows_dir))) != base


def held_check(provisioned, ec2, pool_name, clock, registry, **policy):
    check = make_check(provisioned, ec2, pool_name, clock, LifecycleMetrics(registry))
    check.policy = Policy(idle_stop_s=60, boot_grace_s=600, **policy)
    check.refusals = RefusalStore(provisioned.aws.dynamodb, provisioned.settings.control_table,
                                  instance_arn=provisioned.aws.instance_arn)
    check.configuration = "conf-1"
    return check


def test_a_check_stops_an_instance_whose_worker_refused_and_holds_it(provisioned, ec2, pool_name, stopped_instance):
    # EC2 (moto) stamps launch times with the real time: the clock starts there and is then moved by hand.
    clock = Clock(datetime.now(timezone.utc))
    registry = CollectorRegistry()
    check = held_check(provisioned, ec2, pool_name, clock, registry)
    aws, settings = provisioned.aws, provisioned.settings
    queue_url = aws.queue_url(settings.gpu_queue)
    aws.sqs.send_message(QueueUrl=queue_url, MessageBody="job")
    check.run()  # the job starts the instance
    clock.advance(60)
    check.refusals.record(refusal(stopped_instance, at=clock()))  # its worker refused to start

    clock.advance(5)
    decision = check.run()

    assert decision.stops == (stopped_instance,)
    assert check.pool.get(stopped_instance).state == "stopped"
    assert value(registry, "gpuorch_lifecycle_refusals_total", reason="worker_refused") == 1
    assert value(registry, "gpuorch_gpu_instances_held") == 1
    [held] = check.refusals.refusals()
    assert held.held_against == "conf-1"
    status = StatusStore(aws.dynamodb, settings.control_table).read()
    assert status.held == (stopped_instance,)
    assert status.blocked_reason.startswith(f"the GPU instance {stopped_instance} cannot serve: its worker refused")

    clock.advance(30)
    check.run()  # the job still waits: the held instance is not started for it
    assert check.pool.get(stopped_instance).state == "stopped"
    assert value(registry, "gpuorch_gpu_starts_total", market="on-demand") == 1

    check.refusals.release(stopped_instance)  # an operator asks
    clock.advance(30)
    check.run()
    assert check.pool.get(stopped_instance).state == "running"
    assert value(registry, "gpuorch_gpu_instances_held") == 0


def test_a_check_stops_an_instance_not_ready_within_its_boot_grace(provisioned, ec2, pool_name, stopped_instance):
    clock = Clock(datetime.now(timezone.utc))
    registry = CollectorRegistry()
    check = held_check(provisioned, ec2, pool_name, clock, registry, min_instances=1)
    # Its worker reported in an earlier run only, before this one began.
    HeartbeatStore(provisioned.aws.dynamodb, provisioned.settings.control_table, ttl_s=3600,
                   clock=lambda: clock() - timedelta(seconds=300),
                   instance_arn=provisioned.aws.instance_arn).beat(stopped_instance, [], True)
    check.run()  # min_instances starts it
    clock.advance(600)

    decision = check.run()

    assert decision.stops == (stopped_instance,)
    [recorded] = check.refusals.refusals()
    assert (recorded.source, recorded.held_against) == ("lifecycle", "conf-1")
    assert "not ready within its boot grace" in recorded.reasons[0]
    assert value(registry, "gpuorch_lifecycle_refusals_total", reason="not_ready") == 1
    clock.advance(30)
    check.run()  # min_instances wants it running, but it is held
    assert check.pool.get(stopped_instance).state == "stopped"
