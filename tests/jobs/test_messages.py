"""The checks a GPU queue message passes before it runs, and the redrive decision made from them."""

from __future__ import annotations

import base64
import json
import re

import pytest

from gpuorch.jobs import states
from gpuorch.jobs.deadletters import DeadLetter, dead_letter_reason, read_dead_letter, reason_attributes
from gpuorch.jobs.messages import (Envelope, MessageRejected, TaskCall, check_task_message, decode_sqs_body,
                                   record_problem)
from gpuorch.jobs.redrive import assess, redrive_job_id, selected
from gpuorch.jobs.store import Job
from gpuorch.workflows import load_workflows

CATALOG = load_workflows()
TASKS = {"gpuorch.tasks.camera_angle": "camera-angle", "gpuorch.tasks.qwen_image_edit": "qwen-image-edit",
         "gpuorch.tasks.run_workflow": None}
IMAGE = "s3://gpuorch-jobs/inputs/house.png"
GOOD = {"image": IMAGE, "move": "close_up"}


def envelope(task="gpuorch.tasks.camera_angle", kwargs=None, args=(), job_id="j1", content_type="application/json",
             body=None) -> Envelope:
    headers = {"task": task, "id": job_id} if task is not None else {}
    text = body if body is not None else json.dumps([list(args), GOOD if kwargs is None else kwargs, {}])
    return Envelope(headers, content_type, text)


def sqs_body(headers: dict, args=(), kwargs=None) -> str:
    """A message body exactly as kombu puts it on SQS: base64 of a JSON envelope whose body is base64 JSON."""
    inner = base64.b64encode(json.dumps([list(args), kwargs or {}, {}]).encode()).decode()
    outer = {"body": inner, "content-encoding": "utf-8", "content-type": "application/json", "headers": headers,
             "properties": {"body_encoding": "base64"}}
    return base64.b64encode(json.dumps(outer).encode()).decode()


@pytest.mark.parametrize("message,reason", [
    (envelope(task=None), "not a Celery task message: no task name in its headers"),
    (envelope(job_id=None), "no usable task id"),
    (envelope(job_id=""), "no usable task id"),
    (envelope(job_id=7), "no usable task id"),
    (envelope(job_id="x" * 200), "no usable task id"),
    (envelope(task="gpuorch.tasks.mine_bitcoin"), "unknown task 'gpuorch.tasks.mine_bitcoin'"),
    (envelope(task="lifecycle.live.check"), "unknown task 'lifecycle.live.check'"),
    (envelope(content_type="application/x-python-serialize"), "content type 'application/x-python-serialize'"),
    (envelope(body="{not json"), "its body is not JSON"),
    (envelope(body='{"args": []}'), "not a Celery protocol 2 body"),
    (envelope(body='[[], [], {}]'), "kwargs not an object"),
    (envelope(args=[IMAGE]), "takes keyword arguments only, got 1 positional"),
    (envelope(kwargs={}), "invalid camera-angle parameters: image: Missing data for required field."),
    (envelope(kwargs={"image": IMAGE, "move": 42}), "invalid camera-angle parameters: move: Not a valid string."),
    (envelope(kwargs={**GOOD, "steps": 9}), "steps: Unknown field."),
    (envelope(task="gpuorch.tasks.run_workflow", kwargs={"workflow": "nope", "params": {}}), "unknown workflow 'nope'"),
    (envelope(task="gpuorch.tasks.run_workflow", kwargs={"params": GOOD}), "workflow must be a workflow name"),
    (envelope(task="gpuorch.tasks.run_workflow", kwargs={"workflow": "camera-angle", "params": []}),
     "params must be an object, not list"),
    (envelope(task="gpuorch.tasks.run_workflow", kwargs={"workflow": "camera-angle", "image": IMAGE}),
     "takes workflow and params, not image"),
])
def test_a_message_that_can_never_run_is_rejected_saying_why(message, reason):
    with pytest.raises(MessageRejected) as rejected:
        check_task_message(message, TASKS, CATALOG)
    assert reason in rejected.value.reason
    # Every rejection past the headers names the job, so its record can be failed too.
    assert rejected.value.job_id == (message.headers.get("id") if "usable" not in reason and message.headers else None)


@pytest.mark.parametrize("message,call", [
    (envelope(), TaskCall("j1", "gpuorch.tasks.camera_angle", "camera-angle", GOOD)),
    (envelope(task="gpuorch.tasks.run_workflow", kwargs={"workflow": "camera-angle", "params": GOOD}),
     TaskCall("j1", "gpuorch.tasks.run_workflow", "camera-angle", GOOD)),
])
def test_a_good_message_passes(message, call):
    assert check_task_message(message, TASKS, CATALOG) == call


@pytest.mark.parametrize("raw,reason", [
    ("this is not a task", "not base64 of JSON"),
    (base64.b64encode(b"{not json").decode(), "not base64 of JSON (JSONDecodeError)"),
    (base64.b64encode(b"[1, 2]").decode(), "not a JSON object"),
])
def test_garbage_bodies_are_refused(raw, reason):
    with pytest.raises(MessageRejected, match=re.escape(reason)):
        decode_sqs_body(raw)


def test_a_kombu_body_decodes_to_what_the_worker_sees():
    raw = sqs_body({"task": "gpuorch.tasks.camera_angle", "id": "j1"}, kwargs=GOOD)
    assert check_task_message(decode_sqs_body(raw), TASKS, CATALOG).params == GOOD


def job(status=states.FAILED, workflow="camera-angle", **fields) -> Job:
    return Job("j1", workflow, status, GOOD, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z", **fields)


CALL = TaskCall("j1", "gpuorch.tasks.camera_angle", "camera-angle", GOOD)


@pytest.mark.parametrize("record,problem", [
    (job(), None),
    (None, "no job record for j1"),
    (job(workflow="qwen-image-edit"), "the message runs camera-angle but job j1 is a qwen-image-edit job"),
])
def test_record_problem(record, problem):
    found = record_problem(CALL, record)
    assert (found is None and problem is None) or problem in found


def letter(body: str, reason: str | None = None) -> DeadLetter:
    return DeadLetter("m1", "j1", "gpuorch.tasks.camera_angle", reason=reason, body=body)


GOOD_BODY = sqs_body({"task": "gpuorch.tasks.camera_angle", "id": "j1"}, kwargs=GOOD)


@pytest.mark.parametrize("body,record,unfixable", [
    (GOOD_BODY, job(), None),  # died on the GPU three times: worth another try
    (GOOD_BODY, job(status=states.QUEUED), None),  # the sweep has not reached it yet
    (GOOD_BODY, None, "no job record"),
    (GOOD_BODY, job(status=states.SUCCEEDED), "is succeeded: there is nothing to run again"),
    (GOOD_BODY, job(status=states.CANCELLED), "is cancelled"),
    ("garbage", None, "not a Celery task message"),
    (sqs_body({"task": "gpuorch.tasks.mine_bitcoin", "id": "j1"}), job(), "unknown task"),
    (sqs_body({"task": "gpuorch.tasks.camera_angle", "id": "j1"}, kwargs={"move": 1}), job(), "invalid camera-angle"),
])
def test_redrive_decision(body, record, unfixable):
    item = assess(letter(body), record, task_workflows=TASKS, workflows=CATALOG, max_receive_count=3)
    assert (item.unfixable is None) == (unfixable is None)
    assert unfixable is None or unfixable in item.unfixable
    assert item.as_dict()["fixable"] == (unfixable is None)


def test_the_reason_says_who_put_it_there():
    rejected = read_dead_letter({"MessageId": "m", "Body": "x", "Attributes": {"ApproximateReceiveCount": "2"},
                                 "MessageAttributes": reason_attributes("unknown task 'x'", "orig", "gpu@h", "now")})
    assert (rejected.reason, rejected.source_message_id, rejected.receive_count) == ("unknown task 'x'", "orig", 2)
    assert dead_letter_reason(rejected, 3) == "rejected by gpu@h: unknown task 'x'"
    died = read_dead_letter({"MessageId": "m", "Body": "x"})
    assert dead_letter_reason(died, 3).startswith("delivered 3 times, its worker died each time")


def test_ids_select_by_message_job_or_original_message():
    item = assess(DeadLetter("m1", "j1", None, source_message_id="orig", body=GOOD_BODY), job(),
                  task_workflows=TASKS, workflows=CATALOG, max_receive_count=3)
    assert [selected(item, {i}) for i in ("m1", "j1", "orig", "other")] == [True, True, True, False]


def test_a_redriven_job_id_is_fixed_by_the_old_one():
    assert redrive_job_id("j1") == redrive_job_id("j1") != redrive_job_id("j2")
