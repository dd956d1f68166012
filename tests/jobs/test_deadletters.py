"""Jobs whose message reached the dead-letter queue are recorded as failed, saying why."""

import base64
import json

import pytest

from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch.jobs.deadletters import read_dead_letter, reason_attributes, sweep_dead_letters


def envelope(headers) -> str:
    return base64.b64encode(json.dumps({"body": "", "headers": headers}).encode()).decode()


@pytest.mark.parametrize("body,job_id,task,problem", [
    (envelope({"id": "j1", "task": "gpuorch.tasks.camera_angle"}), "j1", "gpuorch.tasks.camera_angle", None),
    (envelope({"task": "x"}), None, "x", "no task id in its headers"),
    (envelope({"id": ""}), None, None, "no task id in its headers"),
    ("not base64!", None, None, "not a Celery task message (Error)"),
    (base64.b64encode(b"[1, 2]").decode(), None, None, "not a Celery task message (TypeError)"),
    (base64.b64encode(b"{not json").decode(), None, None, "not a Celery task message (JSONDecodeError)"),
])
def test_read_dead_letter(body, job_id, task, problem):
    letter = read_dead_letter({"MessageId": "m", "Body": body})
    assert (letter.job_id, letter.task, letter.problem) == (job_id, task, problem)


def test_sweep_fails_dead_lettered_jobs_once_and_leaves_finished_ones(provisioned):
    settings, aws, jobs = provisioned.settings, provisioned.aws, provisioned.jobs
    app = create_celery_app(settings)  # publishes exactly as kombu does in production
    for job_id in ("dead", "done"):
        jobs.create(job_id, "camera-angle", {}, source="api")
        app.send_task("gpuorch.tasks.camera_angle", kwargs={}, task_id=job_id, queue=settings.gpu_dead_letter_queue)
    jobs.transition("done", states.RUNNING)
    jobs.transition("done", states.SUCCEEDED)
    dlq = aws.queue_url(settings.gpu_dead_letter_queue)
    aws.sqs.send_message(QueueUrl=dlq, MessageBody="garbage")

    letters = sweep_dead_letters(aws.sqs, dlq, jobs, max_receive_count=3)

    assert sorted(letter.job_id or "-" for letter in letters) == ["-", "dead", "done"]
    dead = jobs.get("dead")
    assert dead.status == states.FAILED and "dead-letter queue after 3 deliveries" in dead.error
    assert jobs.get("done").status == states.SUCCEEDED
    # The messages stay for inspection, visible again as soon as the sweep is over (redrive reads them too).
    attributes = aws.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "3"


def test_sweep_fails_a_rejected_job_with_the_workers_reason(provisioned):
    settings, aws, jobs = provisioned.settings, provisioned.aws, provisioned.jobs
    jobs.create("bad", "camera-angle", {}, source="api")
    dlq = aws.queue_url(settings.gpu_dead_letter_queue)
    body = envelope({"id": "bad", "task": "gpuorch.tasks.camera_angle"})
    aws.sqs.send_message(QueueUrl=dlq, MessageBody=body,
                         MessageAttributes=reason_attributes("invalid camera-angle parameters", "m0", "gpu@h", "t"))

    [letter] = sweep_dead_letters(aws.sqs, dlq, jobs, max_receive_count=3)

    assert (letter.job_id, letter.reason) == ("bad", "invalid camera-angle parameters")
    assert jobs.get("bad").error == "its queue message was rejected: invalid camera-angle parameters"
