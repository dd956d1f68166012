"""The API under gunicorn with two worker processes: keys, the shared per-key rate limit, the backlog limit and
the operator routes, over HTTP."""

from __future__ import annotations

import requests

from gpuorch.aws.sqs import queue_depth
from tests.integration.conftest import key_session


def submit(stack, headers: dict[str, str]) -> requests.Response:
    # A new connection each time (Connection: close), so the two gunicorn workers share the requests between them.
    return requests.post(f"{stack.api_url}/api/v1/camera-angle/jobs", timeout=10,
                         headers={**headers, "Connection": "close"}, json={"image": stack.image_uri, "move": "top_down"})


def gpu_queue_depth(stack) -> int:
    return queue_depth(stack.services.aws.sqs, stack.services.aws.queue_url(stack.settings.gpu_queue)).total


def job_count(stack) -> int:
    return stack.services.aws.dynamodb.scan(TableName=stack.settings.job_table, Select="COUNT")["Count"]


def test_the_rate_limit_holds_across_gunicorn_workers(make_stack):
    # One a minute, bursts of 3: however the requests fall on the two workers, three pass and the rest wait.
    stack = make_stack(step_seconds=0.05, run=(), rate_limit_per_minute=1, rate_limit_burst=3)
    headers = dict(stack.session.headers)

    answers = [submit(stack, headers) for _ in range(6)]

    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429, 429]
    for refused in answers[3:]:
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (gpu_queue_depth(stack), job_count(stack)) == (3, 3)
    # Another key has an allowance of its own.
    other = dict(key_session(stack.services, "someone-else").headers)
    assert submit(stack, other).status_code == 202


def test_keys_roles_and_the_backlog_over_http(make_stack):
    stack = make_stack(step_seconds=0.05, run=(), max_backlog=2, backlog_check_seconds=0)

    assert requests.get(f"{stack.api_url}/api/v1/jobs", timeout=10).status_code == 401
    assert requests.get(f"{stack.api_url}/health", timeout=10).status_code == 200
    assert stack.session.get(f"{stack.api_url}/api/v1/gpu", timeout=10).status_code == 403
    pool = stack.operator.get(f"{stack.api_url}/api/v1/gpu", timeout=10)
    assert pool.status_code == 200 and pool.json()["pool"] == stack.settings.gpu_pool

    assert [submit(stack, dict(stack.session.headers)).status_code for _ in range(2)] == [202, 202]
    refused = submit(stack, dict(stack.session.headers))
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "backlog_full"
    assert refused.headers["Retry-After"]
    assert (gpu_queue_depth(stack), job_count(stack)) == (2, 2)
    # Another owner's key sees none of these jobs; the operator sees them all.
    stranger = key_session(stack.services, "stranger")
    assert stranger.get(f"{stack.api_url}/api/v1/jobs", timeout=10).json()["jobs"] == []
    assert len(stack.operator.get(f"{stack.api_url}/api/v1/jobs", timeout=10).json()["jobs"]) == 2
