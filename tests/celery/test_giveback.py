"""A job its interrupted spot instance cannot finish goes back to the queue at once (moto's SQS): visible again now,
by the receipt handle kombu left in the task's request, not after the visibility timeout."""

from __future__ import annotations

from types import SimpleNamespace

from gpuorch.celery.giveback import give_back_now


def received(sqs, queue_url: str) -> list[dict]:
    return sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0, VisibilityTimeout=300).get("Messages", [])


def request_of(message: dict, queue_url: str) -> SimpleNamespace:
    """A task's request as Celery builds it from a kombu SQS message: the delivery info in its properties."""
    return SimpleNamespace(id="job-1", properties={"delivery_info": {"sqs_message": message, "sqs_queue": queue_url}})


def test_a_message_given_back_is_received_again_at_once(provisioned):
    sqs, queue_url = provisioned.aws.sqs, provisioned.aws.queue_url(provisioned.settings.gpu_queue)
    sqs.send_message(QueueUrl=queue_url, MessageBody="job-1")
    [message] = received(sqs, queue_url)
    assert received(sqs, queue_url) == []  # held by its receiver for 300 s

    assert give_back_now(sqs, request_of(message, queue_url))

    [again] = received(sqs, queue_url)
    assert (again["MessageId"], again["Body"]) == (message["MessageId"], "job-1")


def test_without_a_receipt_handle_it_waits_for_the_visibility_timeout(provisioned, caplog):
    sqs = provisioned.aws.sqs
    assert not give_back_now(sqs, SimpleNamespace(id="job-1", properties={"delivery_info": {}}))
    assert not give_back_now(sqs, SimpleNamespace(id="job-1"))
    assert "comes back after the visibility timeout" in caplog.text
