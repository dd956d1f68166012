"""`gpuorch dlq list` shows each dead letter with its job's status and leaves the messages in place."""

import json

from gpuorch.celery_app import GpuorchCelery
from gpuorch.jobs import states


def test_list_shows_jobs_and_garbage_and_removes_nothing(gpuorch, provisioned, settings):
    provisioned.jobs.create("dead", "camera-angle", {}, source="api")
    provisioned.jobs.transition("dead", states.FAILED, error="reached the dead-letter queue")
    GpuorchCelery(settings_loader=lambda: settings).send_task(
        "gpuorch.tasks.camera_angle", kwargs={}, task_id="dead", queue=settings.gpu_dead_letter_queue)
    dlq = provisioned.aws.queue_url(settings.gpu_dead_letter_queue)
    provisioned.aws.sqs.send_message(QueueUrl=dlq, MessageBody="garbage")

    answer = gpuorch("dlq", "list", "--json")

    assert answer.exit_code == 0, answer.output
    rows = sorted(json.loads(answer.stdout), key=lambda r: r["job_id"] or "")
    assert [(r["job_id"], r["status"]) for r in rows] == [(None, None), ("dead", "failed")]
    assert rows[0]["problem"].startswith("not a Celery task message")
    attributes = provisioned.aws.sqs.get_queue_attributes(
        QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    counts = attributes["Attributes"]
    assert int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"]) == 2


def test_an_empty_queue_says_so(gpuorch, provisioned, settings):
    answer = gpuorch("dlq", "list")
    assert answer.exit_code == 0 and "is empty" in answer.stdout
