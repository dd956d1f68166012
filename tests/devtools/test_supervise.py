"""The local GPU host restarts an exited process as systemd's Restart= does for the units: real processes, a held
clock."""

from __future__ import annotations

import re
import signal
import sys
import uuid

import pytest

from gpuorch.aws.clients import AwsClients
from gpuorch.settings import Settings
from gpuorch_dev.local.agent import (
    COMFYUI_RESTART, COMFYUI_RESTART_S, GPU_WORKER_NO_RESTART, GPU_WORKER_RESTART, GPU_WORKER_RESTART_S, GpuHostAgent,
)
from gpuorch_dev.local.instances import create_local_instance
from gpuorch_dev.local.stack import LocalStack, StackError
from gpuorch_dev.local.supervise import (
    ALWAYS, ON_FAILURE, RESTARTED, RUNNING, STOPPED, WAITING, SupervisedProcess, Unit, after_exit, exited_cleanly,
    restarted,
)
from tests.paths import REPO
from tests.support.held_clock import HeldClock

SYSTEMD = REPO / "configs" / "deploy" / "systemd"


@pytest.fixture
def stack(tmp_path):
    with LocalStack(run_dir=tmp_path) as running:
        yield running


def exiting_with(stack: LocalStack, code: int, name: str = "short-lived", restart: str = ALWAYS) -> Unit:
    """A unit whose process exits with `code` as soon as it starts."""
    return Unit(name, lambda: stack.start(name, [sys.executable, "-c", f"import sys; sys.exit({code})"]), 5.0,
                restart=restart)


@pytest.mark.parametrize("returncode,exited_at,now,restart,outcome", [
    (None, None, 0.0, ALWAYS, RUNNING),
    (0, 10.0, 14.9, ALWAYS, WAITING),  # a clean exit (a remote shutdown) is restarted too, after the delay
    (0, 10.0, 15.0, ALWAYS, RESTARTED),
    (-signal.SIGTERM, 10.0, 15.0, ALWAYS, RESTARTED),
    (0, 10.0, 100.0, ON_FAILURE, STOPPED),  # on-failure: a clean exit stays stopped
    (-signal.SIGTERM, 10.0, 100.0, ON_FAILURE, STOPPED),  # stopped on request
    (-signal.SIGINT, 10.0, 100.0, ON_FAILURE, STOPPED),
    (1, 10.0, 14.9, ON_FAILURE, WAITING),
    (1, 10.0, 15.0, ON_FAILURE, RESTARTED),
    (2, 10.0, 99.0, ON_FAILURE, RESTARTED),  # any other process's status 2: a failure
    (-signal.SIGKILL, 10.0, 15.0, ON_FAILURE, RESTARTED),  # killed: a failure
    (-signal.SIGSEGV, 10.0, 12.0, ALWAYS, WAITING),
])
def test_what_becomes_of_an_exited_process(returncode, exited_at, now, restart, outcome):
    assert after_exit(returncode, exited_at, now, restart_s=5.0, restart=restart) == outcome


def test_an_unknown_restart_rule_is_refused():
    with pytest.raises(ValueError, match="on-abnormal"):
        restarted(1, "on-abnormal")


@pytest.mark.parametrize("returncode,restart,outcome", [
    (2, ALWAYS, STOPPED),  # the GPU worker's recorded refusal: left stopped, the lifecycle stops the instance
    (2, ON_FAILURE, STOPPED),
    (1, ALWAYS, RESTARTED),  # a crash, or a refusal it could not record: tried again
    (0, ALWAYS, RESTARTED),  # a remote shutdown
    (0, ON_FAILURE, STOPPED),
])
def test_a_status_the_unit_prevents_is_not_restarted(returncode, restart, outcome):
    assert after_exit(returncode, 10.0, 99.0, restart_s=5.0, prevent_restart=frozenset({2}), restart=restart) == outcome


def test_the_local_gpu_worker_prevents_the_units_restart_statuses():
    text = (SYSTEMD / "gpuorch-gpu-worker.service").read_text()
    statuses = re.search(r"^RestartPreventExitStatus=(.+)$", text, re.M).group(1).split()
    assert frozenset(int(s) for s in statuses) == GPU_WORKER_NO_RESTART


def test_clean_exits_are_systemds():
    assert exited_cleanly(0) and exited_cleanly(-signal.SIGPIPE) and exited_cleanly(-signal.SIGHUP)
    assert not exited_cleanly(1) and not exited_cleanly(-signal.SIGABRT)


@pytest.mark.parametrize("unit_file,local_restart,local_restart_s", [
    ("comfyui.service", COMFYUI_RESTART, COMFYUI_RESTART_S),
    ("gpuorch-gpu-worker.service", GPU_WORKER_RESTART, GPU_WORKER_RESTART_S),
])
def test_the_local_host_restarts_as_the_real_units_do(unit_file, local_restart, local_restart_s):
    text = (SYSTEMD / unit_file).read_text()
    assert re.search(r"^Restart=(.+)$", text, re.M).group(1) == local_restart
    assert float(re.search(r"^RestartSec=(\d+)$", text, re.M).group(1)) == local_restart_s


def test_a_failed_process_starts_again_after_its_delay(stack):
    clock = HeldClock()
    supervised = SupervisedProcess(exiting_with(stack, 3), clock)
    first = supervised.process
    first.popen.wait(timeout=30)

    assert supervised.check() == WAITING
    clock.advance(4.9)
    assert supervised.check() == WAITING and supervised.starts == 1
    clock.advance(0.1)
    assert supervised.check() == RESTARTED
    assert supervised.starts == 2 and supervised.process is not first
    supervised.process.popen.wait(timeout=30)
    assert supervised.check() == WAITING  # it failed again: the delay counts from this exit


def test_a_clean_exit_starts_again_after_its_delay_when_the_unit_restarts_always(stack):
    clock = HeldClock()
    supervised = SupervisedProcess(exiting_with(stack, 0), clock)
    supervised.process.popen.wait(timeout=30)

    assert supervised.check() == WAITING
    clock.advance(5)
    assert supervised.check() == RESTARTED and supervised.starts == 2


def test_a_clean_exit_is_left_stopped_by_an_on_failure_unit(stack):
    clock = HeldClock()
    supervised = SupervisedProcess(exiting_with(stack, 0, restart=ON_FAILURE), clock)
    supervised.process.popen.wait(timeout=30)

    for _ in range(3):
        assert supervised.check() == STOPPED
        clock.advance(60)
    assert supervised.starts == 1


def test_a_start_that_fails_waits_the_delay_again(stack):
    clock = HeldClock()
    starts = []

    def start():
        starts.append(clock())
        if len(starts) == 2:
            raise StackError("not ready")
        return stack.start("flaky", [sys.executable, "-c", "import sys; sys.exit(1)"])

    supervised = SupervisedProcess(Unit("flaky", start, 5.0), clock)
    supervised.process.popen.wait(timeout=30)
    supervised.check()
    clock.advance(5)
    assert supervised.check() == WAITING  # the second start raised
    clock.advance(4)
    assert supervised.check() == WAITING and len(starts) == 2
    clock.advance(1)
    assert supervised.check() == RESTARTED and len(starts) == 3


def test_the_host_agent_restarts_a_crashed_process_while_the_instance_runs(stack, moto_endpoint):
    ec2 = AwsClients(Settings(aws_endpoint_url=moto_endpoint)).ec2
    instance_id = create_local_instance(ec2, f"gpu-{uuid.uuid4().hex[:8]}")
    clock = HeldClock()
    agent = GpuHostAgent(ec2, instance_id, [exiting_with(stack, 1, "crashing"),
                                            exiting_with(stack, 0, "one-shot", restart=ON_FAILURE)],
                         boot_delay_s=2.0, clock=clock)
    ec2.start_instances(InstanceIds=[instance_id])

    agent.step()
    clock.advance(2)
    agent.step()  # booted
    assert agent.boots == 1 and [p.name for p in agent.processes] == ["crashing", "one-shot"]
    for process in agent.processes:
        process.popen.wait(timeout=30)
    agent.step()
    clock.advance(5)
    agent.step()
    assert [s.starts for s in agent.supervised] == [2, 1]

    ec2.stop_instances(InstanceIds=[instance_id])
    agent.step()
    assert agent.processes == [] and agent.boots == 1
