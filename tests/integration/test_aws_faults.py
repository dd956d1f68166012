"""AWS misbehaving under real processes: the stack reaches moto through a fault-injecting proxy.

The stack's processes (API, GPU worker) talk to AWS only through tests/support/aws_proxy.py, which the
tests cut off or make fail chosen requests; the tests' own checks read moto directly, so a fault never
hides what was written. botocore makes two attempts per call here (GPUORCH_AWS_MAX_ATTEMPTS=2) so the
runner's own retries (GPUORCH_AWS_WRITE_ATTEMPTS) are reached in seconds. The tests share one stack,
healed and idle between them; the outage comes last.
"""

from __future__ import annotations

import base64

import pytest

from gpuorch.aws.sqs import queue_depth
from gpuorch_dev.local.stack import Process
from tests.integration.conftest import SAMPLE, start_stack, wait_for
from tests.support.aws_proxy import AwsProxy

WRITE_ATTEMPTS = 4
BOTO_ATTEMPTS = 2


@pytest.fixture(scope="module")
def proxy(moto_endpoint):
    with AwsProxy(moto_endpoint) as running:
        yield running


@pytest.fixture(scope="module")
def faulty_stack(proxy, moto_endpoint, tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("aws-faults"), moto_endpoint, step_seconds=0.1, aws_via=proxy.url,
                          worker_env={"GPUORCH_WARMUP_WORKFLOW": ""},  # no model to load: not what is tested here
                          aws_max_attempts=BOTO_ATTEMPTS, aws_write_attempts=WRITE_ATTEMPTS)
    try:
        running.wait_worker_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
def stack(faulty_stack, proxy):
    """The shared stack, idle, AWS reachable and no fault armed; healed again afterwards."""
    proxy.clear()
    wait_for(faulty_stack.gpu_queue_empty, 30, message="the GPU queue to be empty")
    yield faulty_stack
    proxy.clear()


def submit(stack) -> str:
    answer = stack.submit()
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def stored_outputs(stack, job_id: str) -> list[str]:
    listing = stack.services.aws.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix=f"results/{job_id}/")
    return sorted(obj["Key"].rsplit("/", 1)[-1] for obj in listing.get("Contents", []))


def assert_ended_once(stack, job_id: str, status: str, attempts: int = 1) -> dict:
    """The job ended in `status`, its message is acknowledged, ComfyUI ran its prompt once, and S3 holds
    exactly the outputs its record names (none for a failure)."""
    wait_for(stack.gpu_queue_empty, 30, message=f"job {job_id}'s message to be acknowledged")
    record = stack.job(job_id)
    assert record["status"] == status and record["attempts"] == attempts, record
    assert stack.comfyui_stats()["prompts"][job_id]["executed"] == 1, "ComfyUI ran the prompt more than once"
    assert stored_outputs(stack, job_id) == sorted(o["filename"] for o in record["outputs"]), record
    if status == "succeeded":
        assert len(record["outputs"]) == 1, record
    return record


def job_table_ids(stack) -> set[str]:
    db, ids, query = stack.services.aws.dynamodb, set(), {"TableName": stack.settings.job_table}
    while True:
        page = db.scan(**query)
        ids |= {item["task_id"]["S"] for item in page["Items"]}
        if "LastEvaluatedKey" not in page:
            return ids
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def messages_waiting(stack) -> int:
    return queue_depth(stack.services.aws.sqs, stack.services.aws.queue_url(stack.settings.gpu_queue)).total


def input_keys(stack) -> list[str]:
    listing = stack.services.aws.s3.list_objects_v2(Bucket=stack.settings.bucket, Prefix="inputs/")
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def assert_unavailable(answer) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "unavailable", answer.text


def worker_log_since(worker: Process, offset: int) -> str:
    with open(worker.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_output_upload_failing_past_botocore_is_retried_and_the_job_succeeds_once(stack, proxy):
    # Throttled three times: botocore's two attempts fail, the runner's second round gets through.
    rule = proxy.fail(method="PUT", path=rf"^/{stack.settings.bucket}/results/", times=BOTO_ATTEMPTS + 1,
                      error="throttle")
    offset = stack.worker.log_path.stat().st_size

    job_id = submit(stack)
    stack.wait_terminal(job_id, timeout=60)

    assert rule.exhausted
    assert_ended_once(stack, job_id, "succeeded")
    assert "SlowDown" in worker_log_since(stack.worker, offset)


def test_status_write_failing_and_its_answer_lost_the_job_succeeds_once(stack, proxy):
    # The write of "succeeded" fails with a 500 past botocore's attempts, then one reaches DynamoDB but its
    # answer is lost: the retry is refused by the status condition and reads the record, already succeeded.
    failed = proxy.fail(target="UpdateItem", body='"succeeded"', times=BOTO_ATTEMPTS, error="internal")
    lost = proxy.fail(target="UpdateItem", body='"succeeded"', times=1, error="lost")

    job_id = submit(stack)
    stack.wait_terminal(job_id, timeout=60)

    assert failed.exhausted and lost.exhausted
    record = assert_ended_once(stack, job_id, "succeeded")
    assert record["progress"] == 100 and record["finished_at"]


def test_output_upload_failing_past_the_retries_fails_the_job_with_the_reason(stack, proxy):
    rule = proxy.fail(method="PUT", path=rf"^/{stack.settings.bucket}/results/", times=None, error="internal")

    job_id = submit(stack)
    record = stack.wait_terminal(job_id, timeout=60)

    assert record["status"] == "failed", record
    assert "could not be stored in S3 after 4 attempts" in record["error"], record["error"]
    assert "InternalError" in record["error"], record["error"]
    assert rule.matched == WRITE_ATTEMPTS * BOTO_ATTEMPTS
    assert_ended_once(stack, job_id, "failed")


def test_submission_whose_message_cannot_be_sent_is_refused_and_leaves_nothing(stack, proxy):
    ids_before, inputs_before = job_table_ids(stack), input_keys(stack)
    # The record is written, the message is not: the API removes the record and the stored image again.
    rule = proxy.fail(target="SendMessage", body=stack.settings.gpu_queue, times=None, error="internal")
    image = "data:image/png;base64," + base64.b64encode(SAMPLE.read_bytes()).decode()

    answer = stack.session.post(f"{stack.api_url}/api/v1/camera-angle/jobs", json={"image": image, "move": "close_up"},
                                timeout=120)

    assert_unavailable(answer)
    assert rule.matched >= 1
    assert job_table_ids(stack) == ids_before
    assert input_keys(stack) == inputs_before
    assert messages_waiting(stack) == 0


def test_submission_whose_send_answer_is_lost_is_sent_twice_and_runs_once(stack, proxy):
    # The message reaches SQS but its answer does not: the publisher sends it again, so the job's id is on
    # two messages. The second delivery finds the job's prompt (or its record already succeeded).
    rule = proxy.fail(target="SendMessage", body=stack.settings.gpu_queue, times=1, error="lost")

    job_id = submit(stack)
    stack.wait_terminal(job_id, timeout=60)

    assert rule.exhausted
    record = assert_ended_once(stack, job_id, "succeeded", attempts=stack.job(job_id)["attempts"])
    assert record["attempts"] in (1, 2), record


def test_aws_outage_refuses_submissions_and_the_worker_resumes_without_losing_a_job(stack, proxy):
    # Two jobs in flight on the worker (one running in ComfyUI) and a third waiting in SQS.
    jobs = [submit(stack) for _ in range(3)]
    wait_for(lambda: stack.job(jobs[0])["progress"] > 0, 30, message="the first job to run")
    ids_before = job_table_ids(stack)

    proxy.down()
    assert_unavailable(stack.submit(timeout=120))
    # Down until the first job, finished in ComfyUI meanwhile, has failed to store its output: the runner
    # retries it with backoff, and its status writes after it, until AWS is back.
    wait_for(lambda: proxy.was_refused(method="PUT", path=rf"/results/{jobs[0]}/"), 30,
             message="the first job's output upload to meet the outage")
    proxy.up()
    assert stack.worker.running

    assert job_table_ids(stack) == ids_before, "a refused submission left a record"
    for job_id in jobs:
        stack.wait_terminal(job_id, timeout=90)
        assert_ended_once(stack, job_id, "succeeded")

    # Idle, its long polls of the queue fail (kombu answers a 5xx or lost connection with an empty list, then
    # read it as a response and stopped the whole worker): each is read as an empty receive, polling goes on.
    offset = stack.worker.log_path.stat().st_size
    failed_polls = proxy.fail(target="ReceiveMessage", body=stack.settings.gpu_queue, times=3, error="internal")

    def polls_failed() -> bool:
        assert stack.worker.running, f"the GPU worker stopped:\n{stack.worker.tail()}"
        return failed_polls.exhausted and worker_log_since(stack.worker, offset).count("polling again") >= 3

    wait_for(polls_failed, 60, message="the worker's receives to fail")
    after = submit(stack)
    stack.wait_terminal(after, timeout=60)
    assert_ended_once(stack, after, "succeeded")
    assert stack.worker.running
