"""The GPU worker trusts no message: each kind of bad one goes to the DLQ at once, saying why, and the worker goes on.

Then a job dead-lettered the usual way (three deliveries) is redriven and the new job succeeds, linked to the old.
"""

from __future__ import annotations

import base64
import json

from click.testing import CliRunner

from gpuorch.cli.main import main as gpuorch_cli
from gpuorch.jobs.redrive import redrive_job_id
from gpuorch.settings import settings_env
from tests.integration.conftest import wait_for

CAMERA = "gpuorch.tasks.camera_angle"


def task_body(task: str, job_id: str, *, args=(), kwargs=None) -> str:
    """A Celery protocol 2 message exactly as kombu writes it to SQS (base64 JSON, its body base64 JSON too)."""
    inner = base64.b64encode(json.dumps([list(args), kwargs or {}, {"callbacks": None, "errbacks": None,
                                                                    "chain": None, "chord": None}]).encode()).decode()
    envelope = {
        "body": inner,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": job_id, "root_id": job_id, "parent_id": None, "retries": 0,
                    "eta": None, "expires": None, "group": None, "timelimit": [None, None], "argsrepr": "()",
                    "kwargsrepr": "{}", "origin": "test"},
        "properties": {"correlation_id": job_id, "reply_to": "test", "delivery_mode": 2, "priority": 0,
                       "body_encoding": "base64", "delivery_tag": job_id,
                       "delivery_info": {"exchange": "gpuorch", "routing_key": "gpu"}},
    }
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def cli(stack, *args: str):
    return CliRunner().invoke(gpuorch_cli, list(args), env=settings_env(stack.settings))


def test_bad_messages_are_dead_lettered_with_their_reason_and_the_worker_goes_on(make_stack):
    stack = make_stack(step_seconds=0.05, run=("control_worker", "beat"), dead_letter_sweep_seconds=1)
    sqs, jobs = stack.services.aws.sqs, stack.services.jobs
    gpu_queue = stack.services.aws.queue_url(stack.settings.gpu_queue)
    params = {"image": stack.image_uri, "move": "close_up"}

    # A job dead-lettered the usual way, before any GPU worker runs: three workers each die holding it.
    died = stack.session.post(f"{stack.api_url}/api/v1/camera-angle/jobs", json=params, timeout=10).json()["job_id"]
    for delivery in range(stack.settings.max_receive_count):
        wait_for(lambda: sqs.receive_message(QueueUrl=gpu_queue, WaitTimeSeconds=1, VisibilityTimeout=1)
                 .get("Messages"), 10, message=f"delivery {delivery + 1}")
    # SQS moves the message when a receive would exceed maxReceiveCount: no fourth delivery happens.
    assert not sqs.receive_message(QueueUrl=gpu_queue, WaitTimeSeconds=2).get("Messages")
    wait_for(lambda: stack.job(died)["status"] == "failed", 30, message="the sweep to fail the dead-lettered job")

    # Bad messages, sent raw. Two of them name jobs that have records (valid ones): those records must say failed.
    for job_id in ("missing-fields", "ill-typed"):
        jobs.create(job_id, "camera-angle", params, source="api", owner=stack.settings.submit_owner)
    bad = {
        "garbage": "this is not a task message",
        "not-json": base64.b64encode(b"{not json").decode(),
        "unknown-task": task_body("gpuorch.tasks.mine_bitcoin", "unknown-task"),
        "missing-fields": task_body(CAMERA, "missing-fields", kwargs={}),
        "ill-typed": task_body(CAMERA, "ill-typed", kwargs={"image": stack.image_uri, "move": 42}),
        "positional": task_body(CAMERA, "positional", args=[stack.image_uri]),
        "no-workflow": task_body("gpuorch.tasks.run_workflow", "no-workflow",
                                 kwargs={"workflow": "nope", "params": {}}),
        "no-record": task_body(CAMERA, "no-record", kwargs=params),
    }
    sent = {sqs.send_message(QueueUrl=gpu_queue, MessageBody=body)["MessageId"]: name for name, body in bad.items()}

    stack.worker = stack.start_worker()
    stack.wait_worker_ready()
    pid = stack.worker.popen.pid
    good = stack.session.post(f"{stack.api_url}/api/v1/camera-angle/jobs", json=params, timeout=10).json()["job_id"]
    assert stack.wait_terminal(good)["status"] == "succeeded"

    # Every bad message is in the DLQ once, promptly (the queue's visibility timeout is 300 s), with its reason,
    # and so is the job that died three times. (The control worker sweeps every second, holding the messages for
    # a moment each time: a listing that meets a sweep misses some, so poll.)
    def listed():
        answer = cli(stack, "dlq", "list", "--json")
        assert answer.exit_code == 0, answer.output
        rows = json.loads(answer.stdout)
        return rows if len(rows) == len(bad) + 1 else None

    everything = wait_for(listed, 30, interval=0.5, message="every bad message in the dead-letter queue")
    rows = {sent[r["source_message_id"]]: r for r in everything if r["source_message_id"] in sent}
    assert len(rows) == len(bad)  # one copy each
    assert [r["fixable"] for r in everything if r["job_id"] == died] == [True]
    expected = {
        "garbage": "not a Celery task message",
        "not-json": "not a Celery task message",
        "unknown-task": "unknown task 'gpuorch.tasks.mine_bitcoin'",
        "missing-fields": "invalid camera-angle parameters: image: Missing data for required field.",
        "ill-typed": "invalid camera-angle parameters: move: Not a valid string.",
        "positional": "takes keyword arguments only",
        "no-workflow": "unknown workflow 'nope'",
        "no-record": "no job record for no-record",
    }
    for name, reason in expected.items():
        assert rows[name]["reason"].startswith("rejected by gpu@"), (name, rows[name])
        assert reason in rows[name]["reason"], (name, rows[name])
        assert rows[name]["fixable"] is False

    # Never executed: the records that exist say failed with the reason, and were never started.
    for job_id in ("missing-fields", "ill-typed"):
        record = stack.job(job_id)
        assert (record["status"], record["attempts"]) == ("failed", 0)
        assert record["error"].startswith("its queue message was rejected: invalid camera-angle parameters")
    # The same worker process throughout, none of its pool processes lost, each rejection logged as JSON.
    assert stack.worker.running and stack.worker.popen.pid == pid
    log_lines = stack.worker.log_path.read_text(errors="replace").splitlines()
    assert not [line for line in log_lines if "exited with" in line or "Traceback" in line]
    rejections = [json.loads(line) for line in log_lines if "rejected to the dead-letter queue" in line]
    assert {entry["message_id"] for entry in rejections} == set(sent)
    assert all(entry["reason"] and entry["level"] == "ERROR" for entry in rejections)

    # The job that died three times is fixable: redrive resubmits it as a new job, linked both ways.
    def redriven():
        answer = cli(stack, "dlq", "redrive", died, "--json")
        return answer.exit_code == 0 and json.loads(answer.stdout)

    [outcome] = wait_for(redriven, 30, interval=0.5, message="the redrive (a sweep may hold the message a moment)")
    new_id = redrive_job_id(died)
    assert (outcome["action"], outcome["new_job_id"]) == ("redriven", new_id)
    assert stack.wait_terminal(new_id)["status"] == "succeeded"
    assert stack.job(new_id)["redrive_of"] == died
    old = stack.job(died)
    assert (old["status"], old["redriven_as"]) == ("failed", new_id)
    # Only the unfixable messages are left, and a second redrive resubmits nothing.
    def left_alone() -> bool:
        again = cli(stack, "dlq", "redrive", "--all", "--json")
        assert again.exit_code == 0, again.output
        outcomes = json.loads(again.stdout)
        assert {o["action"] for o in outcomes} <= {"left"}, outcomes  # on every try: never a second resubmission
        return len(outcomes) == len(bad)  # a sweep may hold some of them a moment: until every one was seen

    wait_for(left_alone, 30, interval=0.5, message="a redrive of everything to see every unfixable message")
    assert stack.wait_terminal(new_id)["attempts"] == 1
