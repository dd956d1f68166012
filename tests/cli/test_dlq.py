"""`gpuorch dlq list` shows each dead letter with its reason and job; `dlq redrive` resubmits the fixable ones."""

import json

from gpuorch.aws.sqs import queue_depth
from gpuorch.celery.app import create_celery_app
from gpuorch.jobs import states
from gpuorch.jobs.deadletters import read_dead_letter, reason_attributes
from gpuorch.jobs.redrive import redrive_job_id

PARAMS = {"image": "s3://gpuorch-jobs/inputs/house.png", "move": "close_up"}


def dead_lettered(provisioned, settings, job_id: str, *, params=PARAMS, status=states.FAILED, attributes=None):
    """A job whose message sits in the DLQ, published exactly as kombu publishes it."""
    provisioned.jobs.create(job_id, "camera-angle", PARAMS, source="api")
    if status != states.QUEUED:
        provisioned.jobs.transition(job_id, status, error="reached the dead-letter queue")
    # A GPU worker's copy has the body it received, with its reason; SQS moves the message itself.
    queue = settings.gpu_queue if attributes else settings.gpu_dead_letter_queue
    create_celery_app(settings).send_task(
        "gpuorch.tasks.camera_angle", kwargs=params, task_id=job_id, queue=queue)
    if attributes:
        [message] = drain(provisioned, queue)
        provisioned.aws.sqs.send_message(QueueUrl=provisioned.aws.queue_url(settings.gpu_dead_letter_queue),
                                         MessageBody=message["Body"], MessageAttributes=attributes)


def drain(provisioned, queue: str) -> list[dict]:
    """Receive and delete every message of `queue`."""
    sqs, url = provisioned.aws.sqs, provisioned.aws.queue_url(queue)
    found = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       MessageAttributeNames=["All"]).get("Messages", []):
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found += batch
    return found


def counts(provisioned, queue: str) -> int:
    return queue_depth(provisioned.aws.sqs, provisioned.aws.queue_url(queue)).total


def test_list_shows_each_reason_and_removes_nothing(gpuorch, provisioned, settings):
    dead_lettered(provisioned, settings, "dead")
    dead_lettered(provisioned, settings, "bad", params={"move": 42}, status=states.QUEUED,
                  attributes=reason_attributes("invalid camera-angle parameters: move: Not a valid string.", "m0",
                                               "gpu@box", "2026-01-01T00:00:00Z"))
    dlq = provisioned.aws.queue_url(settings.gpu_dead_letter_queue)
    provisioned.aws.sqs.send_message(QueueUrl=dlq, MessageBody="garbage")

    answer = gpuorch("dlq", "list", "--json")

    assert answer.exit_code == 0, answer.output
    rows = {r["job_id"]: r for r in json.loads(answer.stdout)}
    assert rows["dead"]["reason"].startswith("delivered 3 times, its worker died each time")
    assert (rows["dead"]["job_status"], rows["dead"]["fixable"]) == ("failed", True)
    assert rows["bad"]["reason"] == "rejected by gpu@box: invalid camera-angle parameters: move: Not a valid string."
    assert (rows["bad"]["rejected"], rows["bad"]["fixable"]) == (True, False)
    assert rows[None]["unfixable"].startswith("not a Celery task message")
    # Nothing removed, and nothing left hidden: the next reader sees every message at once.
    attributes = provisioned.aws.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "3"
    text = gpuorch("dlq", "list")
    assert "why: rejected by gpu@box: invalid camera-angle parameters" in text.stdout
    assert "unfixable: not a Celery task message" in text.stdout


def test_an_empty_queue_says_so(gpuorch, provisioned, settings):
    answer = gpuorch("dlq", "list")
    assert answer.exit_code == 0 and "is empty" in answer.stdout


def test_redrive_resubmits_as_a_new_linked_job_once(gpuorch, provisioned, settings):
    dead_lettered(provisioned, settings, "dead")
    new_id = redrive_job_id("dead")

    answer = gpuorch("dlq", "redrive", "dead", "--json")

    assert answer.exit_code == 0, answer.output
    assert [(o["action"], o["new_job_id"]) for o in json.loads(answer.stdout)] == [("redriven", new_id)]
    old, new = provisioned.jobs.get("dead"), provisioned.jobs.get(new_id)
    assert (old.status, old.redriven_as) == ("failed", new_id)
    assert (new.status, new.redrive_of, new.workflow, new.params) == ("queued", "dead", "camera-angle", PARAMS)
    [queued] = drain(provisioned, settings.gpu_queue)
    assert (read_dead_letter(queued).job_id, read_dead_letter(queued).task) == (new_id, "gpuorch.tasks.camera_angle")
    assert counts(provisioned, settings.gpu_dead_letter_queue) == 0

    again = gpuorch("dlq", "redrive", "dead")
    assert again.exit_code == 1 and "not-found" in again.stdout
    assert counts(provisioned, settings.gpu_queue) == 0


def test_a_redrive_killed_after_linking_only_deletes_the_dead_letter(gpuorch, provisioned, settings):
    dead_lettered(provisioned, settings, "dead")
    new_id = redrive_job_id("dead")
    provisioned.jobs.create(new_id, "camera-angle", PARAMS, source="api", redrive_of="dead")
    assert provisioned.jobs.link_redrive("dead", new_id)  # the earlier run published, linked, then died

    answer = gpuorch("dlq", "redrive", "--all")

    assert answer.exit_code == 0 and f"dead -> {new_id}" in answer.stdout
    assert counts(provisioned, settings.gpu_queue) == 0  # not published a second time
    assert counts(provisioned, settings.gpu_dead_letter_queue) == 0


def test_a_redrive_killed_before_linking_publishes_and_links(gpuorch, provisioned, settings):
    dead_lettered(provisioned, settings, "dead", status=states.QUEUED)  # the sweep has not failed it yet
    new_id = redrive_job_id("dead")
    provisioned.jobs.create(new_id, "camera-angle", PARAMS, source="api", redrive_of="dead")

    answer = gpuorch("dlq", "redrive", "dead")

    assert answer.exit_code == 0, answer.output
    old = provisioned.jobs.get("dead")
    assert (old.status, old.redriven_as) == ("failed", new_id)
    assert "dead-letter queue" in old.error
    assert [read_dead_letter(m).job_id for m in drain(provisioned, settings.gpu_queue)] == [new_id]


def test_unfixable_ones_are_reported_and_left_and_dry_run_changes_nothing(gpuorch, provisioned, settings):
    dead_lettered(provisioned, settings, "dead")
    dead_lettered(provisioned, settings, "done", status=states.RUNNING)
    provisioned.jobs.transition("done", states.SUCCEEDED)
    dlq = provisioned.aws.queue_url(settings.gpu_dead_letter_queue)
    provisioned.aws.sqs.send_message(QueueUrl=dlq, MessageBody="garbage")

    dry = gpuorch("dlq", "redrive", "--all", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    actions = sorted((o["job_id"] or "-", o["action"]) for o in json.loads(dry.stdout))
    assert actions == [("-", "left"), ("dead", "would-redrive"), ("done", "left")]
    assert provisioned.jobs.get(redrive_job_id("dead")) is None and counts(provisioned, settings.gpu_queue) == 0

    named = gpuorch("dlq", "redrive", "done", "nonesuch")
    assert named.exit_code == 1
    assert "left          done: job done is succeeded" in named.stdout and "not-found" in named.stdout
    assert counts(provisioned, settings.gpu_dead_letter_queue) == 3

    assert gpuorch("dlq", "redrive").exit_code == 2  # neither ids nor --all


def test_delete_removes_named_or_unfixable_ones_and_fails_their_jobs(gpuorch, provisioned, settings):
    dead_lettered(provisioned, settings, "dead")
    dead_lettered(provisioned, settings, "waiting", status=states.QUEUED)
    dlq = provisioned.aws.queue_url(settings.gpu_dead_letter_queue)
    provisioned.aws.sqs.send_message(QueueUrl=dlq, MessageBody="garbage")

    dry = gpuorch("dlq", "delete", "--unfixable", "--dry-run", "--json")
    assert [(o["job_id"], o["action"]) for o in json.loads(dry.stdout)] == [(None, "would-delete")]
    assert counts(provisioned, settings.gpu_dead_letter_queue) == 3

    assert gpuorch("dlq", "delete", "--unfixable").exit_code == 0
    named = gpuorch("dlq", "delete", "waiting", "nonesuch")
    assert named.exit_code == 1 and "deleted       waiting" in named.stdout and "not-found" in named.stdout
    assert [r["job_id"] for r in json.loads(gpuorch("dlq", "list", "--json").stdout)] == ["dead"]
    waiting = provisioned.jobs.get("waiting")
    assert waiting.status == states.FAILED and "dead-letter queue" in waiting.error
    assert gpuorch("dlq", "delete").exit_code == 2
