"""Pure parts of the job runner: stable names, output keys, advisory progress writes, which failures to retry;
inputs uploaded while they are decoded."""

import io
import threading
from types import SimpleNamespace

import pytest
from PIL import Image
from celery.exceptions import Reject
from botocore.exceptions import (
    ClientError, ConnectionClosedError, EndpointConnectionError, ParamValidationError, ReadTimeoutError,
)

from gpuorch.celery import tasks
from gpuorch.comfyui.errors import ComfyUnavailable
from gpuorch.comfyui.progress import Progress
from gpuorch.errors import JobDeferred
from gpuorch.execution.interruption import NoticeBoard
from gpuorch.inputs import InputRejected, InputUnavailable
from gpuorch.execution.retry import aws_retry, transient
from gpuorch.execution import runner
from gpuorch.execution.runner import JobExecution, ProgressReporter, input_name, output_key, run_job
from tests.conftest import wait_for


@pytest.mark.parametrize("subfolder,filename,key", [
    ("", "out_00001_.png", "results/J/out_00001_.png"),
    ("gpuorch/J", "out_00001_.png", "results/J/out_00001_.png"),
    ("gpuorch/J/extra", "a.webp", "results/J/extra/a.webp"),
])
def test_output_key(subfolder, filename, key):
    assert output_key("J", subfolder, filename) == key


def test_input_names_are_stable_per_job_and_index():
    assert input_name("J", 0, "PNG") == input_name("J", 0, "PNG") == "gpuorch-J-0.png"
    assert input_name("J", 1, "JPEG") == "gpuorch-J-1.jpeg"


class Jobs:
    def __init__(self, fail=False):
        self.fail, self.writes = fail, []

    def report_progress(self, job_id, percent, node):
        if self.fail:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        self.writes.append((percent, node))


def test_progress_is_written_only_when_it_grows():
    jobs, states = Jobs(), []
    report = ProgressReporter(SimpleNamespace(jobs=jobs), "J", lambda **kw: states.append(kw["meta"]["progress"]))
    for percent in (10, 10, 5, 40):
        report(Progress(percent=percent, node_id="13", node_type="KSampler"))
    assert jobs.writes == [(10, "13 KSampler"), (40, "13 KSampler")]
    assert states == [10, 40]


def test_a_failed_progress_write_does_not_fail_the_job():
    report = ProgressReporter(SimpleNamespace(jobs=Jobs(fail=True)), "J", None)
    report(Progress(percent=10))  # logged, not raised


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("error,worth_retrying", [
    (client_error("SlowDown", 503), True),
    (client_error("ThrottlingException", 400), True),
    (client_error("ProvisionedThroughputExceededException", 400), True),
    (client_error("InternalError", 500), True),
    (client_error("Whatever", 502), True),
    (client_error("ConditionalCheckFailedException", 400), False),
    (client_error("ResourceNotFoundException", 400), False),
    (client_error("AccessDenied", 403), False),
    (EndpointConnectionError(endpoint_url="http://x"), True),
    (ConnectionClosedError(endpoint_url="http://x"), True),
    (ReadTimeoutError(endpoint_url="http://x"), True),
    (ParamValidationError(report="bad"), False),
    (InputUnavailable("s3://b/k: SlowDown"), True),
    (ComfyUnavailable("connection refused"), True),
    (InputRejected("not an image"), False),
    (JobDeferred("no job record"), True),
    (ValueError("not AWS"), False),
])
def test_failures_worth_retrying(error, worth_retrying):
    assert transient(error) is worth_retrying


def test_aws_retry_gives_up_after_its_attempts_and_raises_the_last_error():
    calls = []

    @aws_retry(3, max_wait=0)
    def put():
        calls.append(1)
        raise client_error("SlowDown", 503)

    with pytest.raises(ClientError):
        put()
    assert len(calls) == 3


def test_a_job_whose_record_aws_cannot_reach_gives_its_message_back():
    def unreachable(*_a, **_k):
        raise EndpointConnectionError(endpoint_url="http://dynamodb")

    jobs = SimpleNamespace(get=unreachable, transition=unreachable)
    services = SimpleNamespace(settings=SimpleNamespace(aws_write_attempts=2), jobs=jobs)
    with pytest.raises(JobDeferred):
        run_job(services, "J", "camera-angle", {})
    # The task gives the message back undeleted: SQS delivers it again after the visibility timeout.
    task = SimpleNamespace(app=SimpleNamespace(services=services, notice_board=NoticeBoard()),
                           request=SimpleNamespace(id="J"), update_state=lambda **_: None)
    with pytest.raises(Reject) as rejected:
        tasks.run(task, "camera-angle", {})
    assert rejected.value.requeue is False


def test_a_refused_aws_call_is_not_turned_into_a_redelivery():
    def missing(*_a, **_k):
        raise client_error("ResourceNotFoundException", 400)

    jobs = SimpleNamespace(get=missing, transition=missing)
    services = SimpleNamespace(settings=SimpleNamespace(aws_write_attempts=2), jobs=jobs)
    with pytest.raises(ClientError):
        run_job(services, "J", "camera-angle", {})


def inputs_execution(monkeypatch, data: bytes, uploaded: list) -> JobExecution:
    """A JobExecution of one input (fetched as `data`) whose uploads to ComfyUI are recorded in `uploaded`."""
    monkeypatch.setattr(runner, "fetch_input", lambda uri, policy, s3_client: data)
    execution = object.__new__(JobExecution)
    execution.settings = SimpleNamespace(max_input_pixels=10**6, max_input_bytes=10**6)
    execution.services = SimpleNamespace(aws=SimpleNamespace(s3=None))
    execution.job = SimpleNamespace(job_id="J")
    execution.image_uris = lambda: ["s3://bucket/in.png"]
    execution.aws_retry = execution.retry = lambda call: call
    monkeypatch.setattr(runner.InputPolicy, "from_settings", staticmethod(lambda settings: None))

    def upload_image(name, body, overwrite):
        uploaded.append(name)
        return name

    execution.comfy = SimpleNamespace(upload_image=upload_image)
    return execution


def png(size=(8, 8)) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", size, bytes((i * 97) % 251 for i in range(size[0] * size[1] * 3))).save(out, format="PNG")
    return out.getvalue()


def test_an_input_uploads_while_its_pixels_are_decoded(monkeypatch):
    uploaded: list = []
    execution = inputs_execution(monkeypatch, png(), uploaded)
    decoding = threading.Event()

    def decode(data):
        decoding.set()
        assert wait_for(lambda: uploaded, 5, interval=0.01), "the upload did not go on while decoding"
        runner_decode(data)

    runner_decode = runner.decode_image
    monkeypatch.setattr(runner, "decode_image", decode)
    assert execution.upload_inputs() == ["gpuorch-J-0.png"] and decoding.is_set()


def test_a_corrupt_input_still_fails_its_job_before_any_prompt(monkeypatch):
    data = png((32, 32))
    execution = inputs_execution(monkeypatch, data[: len(data) // 2], [])
    with pytest.raises(InputRejected, match="could not be decoded"):
        execution.upload_inputs()
