"""Invariant 2's end: a message received maxReceiveCount times reaches the DLQ and its job says failed."""

from __future__ import annotations


from tests.integration.conftest import wait_for


def test_dead_lettered_job_is_recorded_failed_by_the_control_worker(make_stack):
    # No GPU worker here: this test plays three workers that each die holding the message.
    stack = make_stack(step_seconds=0.05, run=("control_worker", "beat"), visibility_timeout=1,
                       dead_letter_sweep_seconds=1)
    answer = stack.session.post(
        f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": stack.image_uri, "move": "close_up"}, timeout=10
    )
    job_id = answer.json()["job_id"]
    sqs, queue_url = stack.services.aws.sqs, stack.services.aws.queue_url(stack.settings.gpu_queue)

    def receive_and_abandon():
        return sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, VisibilityTimeout=1).get("Messages")

    for delivery in range(stack.settings.max_receive_count):
        wait_for(receive_and_abandon, 10, message=f"delivery {delivery + 1}")
    # SQS moves the message when a receive would exceed maxReceiveCount: no fourth delivery happens.
    assert not sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=2).get("Messages")

    record = wait_for(lambda: (r := stack.job(job_id))["status"] == "failed" and r, 30, message="the sweep")
    assert "dead-letter queue after 3 deliveries" in record["error"]
    assert stack.job(job_id)["status"] == "failed"
