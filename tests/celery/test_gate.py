"""The GPU worker's gate on messages received through kombu's SQS transport from the moto server, as a worker does."""

from __future__ import annotations

import pytest

from gpuorch.aws.sqs import queue_depth
from gpuorch.celery.app import create_celery_app
from gpuorch.celery.gate import MessageGate
from gpuorch.jobs import states
from gpuorch.jobs.deadletters import read_dead_letter

TASKS = {"gpuorch.tasks.camera_angle": "camera-angle", "gpuorch.tasks.qwen_image_edit": "qwen-image-edit",
         "gpuorch.tasks.run_workflow": None}
PARAMS = {"image": "s3://gpuorch-jobs/inputs/house.png", "move": "close_up"}


@pytest.fixture
def celery(provisioned):
    app = create_celery_app(provisioned.settings)
    yield app
    app.close()


@pytest.fixture
def receive(celery, provisioned):
    """Receive one message of the GPU queue as a kombu Message, through the transport a worker uses."""
    connection = celery.connection_for_read()
    queue = connection.SimpleQueue(provisioned.settings.gpu_queue, no_ack=False)

    def get():
        return queue.get(block=True, timeout=10)

    yield get
    queue.close()
    connection.close()


def queue_counts(provisioned, name: str) -> tuple[int, int]:
    depth = queue_depth(provisioned.aws.sqs, provisioned.aws.queue_url(name))
    return depth.visible, depth.in_flight


def dead_letters(provisioned) -> list:
    url = provisioned.aws.queue_url(provisioned.settings.gpu_dead_letter_queue)
    answer = provisioned.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return [read_dead_letter(m) for m in answer.get("Messages", [])]


def test_a_good_message_is_admitted_and_left_to_celery(celery, receive, provisioned):
    provisioned.jobs.create("good", "camera-angle", PARAMS, source="api")
    celery.send_task("gpuorch.tasks.camera_angle", kwargs=PARAMS, task_id="good", queue=provisioned.settings.gpu_queue)
    gate = MessageGate(provisioned, TASKS, hostname="gpu@test")

    assert gate.admit(receive()) is True
    assert queue_counts(provisioned, provisioned.settings.gpu_queue) == (0, 1)  # still in flight: Celery acks it
    assert dead_letters(provisioned) == []


def test_a_bad_message_is_copied_with_its_reason_then_deleted_and_its_job_failed(celery, receive, provisioned):
    provisioned.jobs.create("bad", "camera-angle", PARAMS, source="api")
    celery.send_task("gpuorch.tasks.camera_angle", kwargs={"move": 42}, task_id="bad",
                     queue=provisioned.settings.gpu_queue)
    gate = MessageGate(provisioned, TASKS, hostname="gpu@test")
    message = receive()

    assert gate.admit(message) is False
    assert queue_counts(provisioned, provisioned.settings.gpu_queue) == (0, 0)
    [letter] = dead_letters(provisioned)
    assert (letter.job_id, letter.rejected_by) == ("bad", "gpu@test")
    assert letter.source_message_id == message.delivery_info["sqs_message"]["MessageId"]
    assert letter.reason.startswith("invalid camera-angle parameters: image: Missing data")
    record = provisioned.jobs.get("bad")
    assert (record.status, record.attempts) == (states.FAILED, 0)
    assert record.error == f"its queue message was rejected: {letter.reason}"


def test_garbage_is_dead_lettered_too(receive, provisioned):
    url = provisioned.aws.queue_url(provisioned.settings.gpu_queue)
    provisioned.aws.sqs.send_message(QueueUrl=url, MessageBody="this is not a task message")
    gate = MessageGate(provisioned, TASKS, hostname="gpu@test")

    assert gate.admit(receive()) is False
    [letter] = dead_letters(provisioned)
    assert letter.reason == "not a Celery task message: no task name in its headers"
    assert letter.body == "this is not a task message"


def test_a_message_that_cannot_be_copied_is_given_back_not_lost(celery, receive, provisioned):
    celery.send_task("gpuorch.tasks.mine_bitcoin", kwargs={}, task_id="x", queue=provisioned.settings.gpu_queue)
    gate = MessageGate(provisioned, TASKS, hostname="gpu@test")
    # The DLQ disappears under the gate: the copy fails, so the original must stay for SQS's own redrive.
    provisioned.aws.sqs.delete_queue(QueueUrl=provisioned.aws.queue_url(provisioned.settings.gpu_dead_letter_queue))

    assert gate.admit(receive()) is False
    assert queue_counts(provisioned, provisioned.settings.gpu_queue) == (0, 1)
