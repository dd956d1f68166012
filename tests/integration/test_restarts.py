"""Processes restarted mid-stream: the API while clients submit, the control worker while jobs wait."""

from __future__ import annotations

import signal
import threading

import requests

from gpuorch_dev.local.stack import Process
from tests.integration.conftest import wait_for
from tests.integration.test_aws_faults import job_table_ids

CLIENTS = 3
# Each client's pause between submissions: enough jobs to span the restart, few enough to finish quickly.
PACE_S = 0.3


def named(stack, name: str) -> Process:
    [process] = [p for p in stack.processes.processes if p.name == name]
    return process


def restart(stack, name: str, env: dict[str, str] | None = None, *, kill: bool = False) -> Process:
    """Stop a Procfile process (SIGTERM and wait, or SIGKILL) and start it again with the same settings."""
    process = named(stack, name)
    if kill:
        process.signal_group(signal.SIGKILL)
        process.popen.wait()
    else:
        process.stop()
    stack.processes.processes.remove(process)
    [started] = stack.processes.start_procfile([name], env)
    return started


class Submitters:
    """Clients submitting jobs until stopped; every answer kept (job id, or why it was refused)."""

    def __init__(self, stack, clients: int):
        self.stack, self.stop = stack, threading.Event()
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                answer = self.stack.submit(timeout=60)
            except requests.ConnectionError as exc:  # the API is down: nothing can have been written
                outcome, job_id = f"connection: {type(exc).__name__}", None
            else:
                job_id = answer.json()["job_id"] if answer.status_code == 202 else None
                outcome = answer.status_code
            with self.lock:
                if job_id:
                    self.accepted.append(job_id)
                else:
                    self.refused.append(str(outcome))
            self.stop.wait(PACE_S)  # the event ends the pause at once when the test is done

    def __enter__(self) -> "Submitters":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)

    def count(self) -> int:
        with self.lock:
            return len(self.accepted)


def test_api_restarted_while_clients_submit_every_accepted_job_finishes_and_refusals_leave_nothing(make_stack):
    stack = make_stack(step_seconds=0.02)
    api_port = stack.api_url.rsplit(":", 1)[1]
    api_env = {"GPUORCH_API_BIND": f"127.0.0.1:{api_port}", "GPUORCH_API_WORKERS": "2"}

    with Submitters(stack, CLIENTS) as clients:
        wait_for(lambda: clients.count() >= 3, 60, message="submissions before the restart")
        # A deploy's restart: gunicorn finishes the requests it holds, then the new one takes the port.
        api = restart(stack, "api", api_env)
        stack.processes.wait_until_ready(api, lambda: requests.get(f"{stack.api_url}/health", timeout=5).ok)
        before = clients.count()
        wait_for(lambda: clients.count() >= before + 3, 60, message="submissions after the restart")

    accepted = set(clients.accepted)
    assert len(accepted) == len(clients.accepted)
    # Whatever was refused (connection refused while the port was free) wrote no record.
    assert job_table_ids(stack) == accepted, (len(accepted), clients.refused)
    for job_id in accepted:
        assert stack.wait_terminal(job_id, timeout=120)["status"] == "succeeded"
    wait_for(stack.gpu_queue_empty, 30, message="every message to be acknowledged")


def test_control_worker_restarted_while_jobs_wait_sweeps_resume_and_nothing_is_lost(make_stack):
    # No GPU worker until the end, so jobs wait in the queue while the control worker is away.
    stack = make_stack(step_seconds=0.02, run=("control_worker", "beat"), dead_letter_sweep_seconds=1,
                       lifecycle_check_seconds=1)
    doomed = stack.submit().json()["job_id"]
    control = named(stack, "control_worker")
    control.signal_group(signal.SIGKILL)  # a crash: whatever it held comes back to the control queue
    control.popen.wait()

    # While it is away, one job's message dies three times (workers lost holding it) and reaches the DLQ.
    sqs, queue_url = stack.services.aws.sqs, stack.services.aws.queue_url(stack.settings.gpu_queue)

    def receive_and_abandon():
        return sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, VisibilityTimeout=1).get("Messages")

    for delivery in range(stack.settings.max_receive_count):
        wait_for(receive_and_abandon, 10, message=f"delivery {delivery + 1}")
    assert not sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2).get("Messages")  # moved to the DLQ
    waiting = [stack.submit().json()["job_id"] for _ in range(4)]
    assert stack.job(doomed)["status"] == "queued"

    stack.processes.processes.remove(control)
    offset = control.log_path.stat().st_size
    [control] = stack.processes.start_procfile(["control_worker"])

    record = wait_for(lambda: (r := stack.job(doomed))["status"] == "failed" and r, 60,
                      message="the dead-letter sweep after the restart")
    assert "dead-letter queue after 3 deliveries" in record["error"]

    def checked_since_restart() -> bool:
        """The restarted worker's lifecycle check saw the waiting jobs (and found no instance to start)."""
        with open(control.log_path, "rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").splitlines()
        return any("lifecycle: " in line and f"{len(waiting)} job(s) waiting" in line for line in lines)

    wait_for(checked_since_restart, 30, message="a lifecycle check by the restarted control worker")
    assert all(stack.job(job_id)["status"] == "queued" for job_id in waiting)

    stack.worker = stack.start_worker({"GPUORCH_WARMUP_WORKFLOW": ""})
    for job_id in waiting:
        assert stack.wait_terminal(job_id, timeout=120)["status"] == "succeeded"
    assert stack.job(doomed)["status"] == "failed"
    wait_for(stack.gpu_queue_empty, 30, message="every message to be acknowledged")
