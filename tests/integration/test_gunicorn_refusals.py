"""The API under gunicorn refusing what a raw socket can send: gunicorn's own refusals and a chunked body over the
size limit, each answered in the one JSON error shape."""

from __future__ import annotations

import http.client
import json
import socket
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import start_stack
from webapp.errors import ErrorSchema

# Small, so a body over it is quick to send; gunicorn's own limits are its defaults (request line 4094 bytes, a
# header 8190 bytes).
BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def api(moto_endpoint, tmp_path_factory):
    """The API alone (and the emulator start_stack always starts), with a small body limit."""
    running = start_stack(tmp_path_factory.mktemp("refusals"), moto_endpoint, step_seconds=0.05, run=(),
                          max_request_bytes=BODY_LIMIT)
    yield running
    running.stop()


class Answer(NamedTuple):
    status: int
    content_type: str | None
    body: bytes


def exchange(api_url: str, request: bytes) -> Answer:
    """Send ``request`` as it is on a new connection; the answer, read whole."""
    address = urlsplit(api_url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
        connection.sendall(request)
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return Answer(answer.status, answer.getheader("Content-Type"), answer.read())


def chunked(body: bytes, size: int = 8192) -> bytes:
    chunks = [body[start:start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def submission(api, body: bytes) -> bytes:
    """POST of a camera-angle job with a user key, its JSON body sent chunked (no Content-Length)."""
    head = (f"POST /api/v1/camera-angle/jobs HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: {api.session.headers['Authorization']}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    return head.encode() + chunked(body)


def get(head_lines: str) -> bytes:
    return f"{head_lines}\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("latin-1")


REFUSALS = [
    pytest.param(lambda api: get(f"GET /{'a' * 5000} HTTP/1.1"), 414, "uri_too_long", id="request line too long"),
    pytest.param(lambda api: get(f"GET /health HTTP/1.1\r\nX-Padding: {'a' * 9000}"), 431,
                 "request_header_fields_too_large", id="header too large"),
    pytest.param(lambda api: get("GET /health HTTP/1.1\r\nNo colon in this header"), 400, "bad_request",
                 id="malformed header"),
    pytest.param(lambda api: submission(api, json.dumps({"image": api.image_uri, "move": "top_down",
                                                         "note": "x" * BODY_LIMIT}).encode()),
                 413, "request_entity_too_large", id="chunked body over the limit"),
]


@pytest.mark.parametrize(("request_for", "status", "code"), REFUSALS)
def test_each_refusal_is_json_in_the_error_shape(api, request_for, status, code):
    answer = exchange(api.api_url, request_for(api))

    assert answer.status == status, answer.body
    assert answer.content_type == "application/json"
    body = json.loads(answer.body)
    assert set(body) == {"error"} and ErrorSchema().validate(body) == {}, body
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_a_chunked_body_within_the_limit_is_read_whole(api):
    # Padded with spaces to exactly the limit: the body that ends at the limit is taken, not refused.
    body = json.dumps({"image": api.image_uri, "move": "top_down"}).encode()

    answer = exchange(api.api_url, submission(api, body.ljust(BODY_LIMIT)))

    assert answer.status == 202, answer.body
    assert json.loads(answer.body)["status"] == "queued"


def test_the_api_starts_without_gunicorns_control_socket(api):
    """gunicorn 25.1+ opens a control socket under $HOME by default, which the unit's user cannot write (every start
    logged a control server error); the API's configuration turns it off."""
    [process] = [p for p in api.processes.processes if p.name == "api"]
    log = process.log_path.read_text(errors="replace")
    assert "Listening at: " in log
    assert "Control socket" not in log and "Control server" not in log, log
