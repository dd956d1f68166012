"""The API answers each error by its branch of the tree, from one table (webapp.errors.ANSWERS)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from flask import Flask
from kombu.exceptions import OperationalError

from gpuorch.access.backlog import BacklogFull
from gpuorch.access.ratelimit import Limit, RateLimited
from gpuorch.comfyui.errors import ComfyUnavailable
from gpuorch.errors import InputTooLarge, JobFailed, ParamsInvalid, UnknownWorkflow
from gpuorch.inputs import InputRejected
from gpuorch.jobs.messages import MessageRejected
from gpuorch.jobs.store import TransitionRefused
from lifecycle.facade import CapacityError, Ec2Unavailable, PeriodError, UnknownInstance
from lifecycle.live.lease import LeaseBusy
from webapp.errors import ApiError, ErrorSchema, answer_for, register_error_handlers

# (error, status, code, Retry-After, fields)
ANSWERED = [
    # RequestRefused: 400 unless its class says otherwise.
    (ParamsInvalid({"seed": ["Not a valid integer."]}), 422, "invalid_params", None,
     {"seed": ["Not a valid integer."]}),
    (InputTooLarge({"image": ["over 100 bytes"]}, ["image"]), 413, "image_too_large", None,
     {"image": ["over 100 bytes"]}),
    (PeriodError("from", "'x' is not an ISO 8601 date"), 422, "invalid_params", None,
     {"from": ["'x' is not an ISO 8601 date"]}),
    (UnknownWorkflow("sketch", ["camera-angle"]), 404, "unknown_workflow", None, None),
    (InputRejected("not an image"), 400, "bad_request", None, None),
    (MessageRejected("not a task message"), 400, "bad_request", None, None),
    (ApiError(401, "unauthorized", "Send an API key.", headers={"WWW-Authenticate": "Bearer"}), 401, "unauthorized",
     None, None),
    # AdmissionRefused: Retry-After in whole seconds, rounded up.
    (RateLimited("k1", Limit(per_minute=6, burst=3), 9.2), 429, "rate_limited", "10", None),
    (BacklogFull("The GPU queue already holds 5 jobs."), 503, "backlog_full", "30", None),
    # Conflict: 409 where a route answers it, 404 for an instance that is not in the pool.
    (TransitionRefused("j-1", "cancelled", "succeeded"), 409, "job_finished", None, None),
    (LeaseBusy("lease 'x' is held by another owner"), 409, "conflict", None, None),
    (UnknownInstance("i-0123abcd is not a live instance of pool 'gpu'"), 404, "instance_not_found", None, None),
    # Unavailable: 503, and AWS's or the broker's own errors with it; no capacity is a 409.
    (CapacityError("i-0123abcd", (("g6e.2xlarge", "none left"),)), 409, "no_capacity", None, None),
    (Ec2Unavailable("ec2 start_instances: throttled"), 503, "unavailable", "30", None),
    (ComfyUnavailable("connection refused"), 503, "unavailable", None, None),
    (EndpointConnectionError(endpoint_url="http://dynamodb"), 503, "unavailable", None, None),
    (ClientError({"Error": {"Code": "InternalError"}}, "PutItem"), 503, "unavailable", None, None),
    (OperationalError("broker down"), 503, "unavailable", None, None),
]


@pytest.fixture(scope="module")
def client():
    app = Flask(__name__)
    register_error_handlers(app)
    raised: list[Exception] = []

    @app.post("/raise")
    def raise_it():
        raise raised.pop()

    def answer(error: Exception):
        raised.append(error)
        return app.test_client().post("/raise")

    return answer


@pytest.mark.parametrize("error, status, code, retry_after, fields", ANSWERED, ids=lambda v: type(v).__name__)
def test_each_error_is_answered_by_its_branch(client, error, status, code, retry_after, fields):
    answer = client(error)
    assert (answer.status_code, answer.json["error"]["code"]) == (status, code)
    assert answer.headers.get("Retry-After") == retry_after
    assert answer.json["error"].get("fields") == fields
    assert ErrorSchema().validate(answer.json) == {}
    assert answer.json["error"]["message"].endswith(".")


@pytest.mark.parametrize("error, words", [
    (UnknownWorkflow("sketch", ["camera-angle", "reframe"]),
     "No workflow is named 'sketch'; known: camera-angle, reframe."),
    (TransitionRefused("j-1", "cancelled", "succeeded"),
     "Job j-1 is already succeeded; only queued or running jobs can be cancelled."),
    (RateLimited("k1", Limit(per_minute=6, burst=3), 9.2),
     "This API key may submit 6 jobs a minute (bursts of 3); try again in 10 s."),
    (Ec2Unavailable("ec2 start_instances: throttled"), "EC2 did not answer: ec2 start_instances: throttled."),
    (ClientError({"Error": {"Code": "InternalError"}}, "PutItem"),
     "The job service cannot reach its queue or store; try again shortly."),
    (InputTooLarge({"image": ["big"], "seed": ["bad"]}, ["image"]),
     "Inline image over the size limit: image. Also refused: seed."),
])
def test_the_message_says_what_the_client_can_do(client, error, words):
    assert client(error).json["error"]["message"] == words


def test_an_error_the_table_does_not_name_is_left_to_flask():
    # A job's outcome is never a route's answer: were one raised there, it would be a plain 500.
    assert answer_for(JobFailed("job j-1 failed")) is None
    assert answer_for(ValueError("a bug")) is None
