"""GPU worker heartbeats in the control table (moto server), and the worker's instance id (IMDSv2 stand-in)."""

from __future__ import annotations

import http.server
import threading
from datetime import timedelta

import pytest

from lifecycle.live.heartbeats import (
    HEARTBEAT_PK, HeartbeatStore, IdentityError, WorkerReport, http_request, instance_identity, last_activity,
)
from lifecycle.model import Heartbeat
from workers.heartbeat import Heartbeat as WorkerHeartbeat

from tests.conftest import free_port


@pytest.fixture
def store(dynamodb, control_table, clock):
    return HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock)


def test_a_beat_reads_back_as_a_heartbeat_with_its_last_busy_moment(store, clock):
    busy = clock() - timedelta(seconds=5)
    assert store.beat("i-0aaa", ["job-1", "job-2"], True, busy)
    store.beat("i-0bbb", [], False)
    assert store.all() == (
        WorkerReport(Heartbeat("i-0aaa", clock(), ("job-1", "job-2"), True), busy),
        WorkerReport(Heartbeat("i-0bbb", clock(), (), False), None),
    )
    assert store.heartbeats() == tuple(r.heartbeat for r in store.all())
    assert last_activity(store.all()) == {"i-0aaa": busy}


def test_the_latest_beat_replaces_the_previous_one(store, clock):
    store.beat("i-0aaa", ["job-1"], True, clock())
    first_busy = clock()
    clock.advance(15)
    store.beat("i-0aaa", [], True)  # no last_busy_at: the stored one stays
    (report,) = store.all()
    assert report.heartbeat == Heartbeat("i-0aaa", clock(), (), True)
    assert report.last_busy_at == first_busy


def test_a_delayed_older_beat_changes_nothing(dynamodb, control_table, clock):
    early = HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=lambda: clock() - timedelta(seconds=10))
    store = HeartbeatStore(dynamodb, control_table, ttl_s=120, clock=clock)
    assert store.beat("i-0aaa", ["job-2"], True)
    assert not early.beat("i-0aaa", ["job-1"], True)
    assert store.all()[0].heartbeat.running_jobs == ("job-2",)


def test_a_dead_worker_vanishes_after_the_ttl(store, dynamodb, control_table, clock):
    store.beat("i-0aaa", [], True)
    item = dynamodb.get_item(TableName=control_table, Key={"pk": {"S": HEARTBEAT_PK}, "sk": {"S": "i-0aaa"}})["Item"]
    assert int(item["expires_at"]["N"]) == int(clock().timestamp()) + 120  # the table's TTL attribute
    clock.advance(119)
    assert len(store.all()) == 1
    clock.advance(1)
    assert store.all() == ()  # before DynamoDB's own TTL deletion, which can lag


def test_ttl_must_be_positive(dynamodb, control_table):
    with pytest.raises(ValueError):
        HeartbeatStore(dynamodb, control_table, ttl_s=0)


class Imds(http.server.BaseHTTPRequestHandler):
    """EC2's instance metadata service as IMDSv2 answers: a token by PUT, then data only with that token."""

    instance_id = "i-0123456789abcdef0"
    token = "tok-123"

    def do_PUT(self):
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self._send(400, "")
        self._send(200, self.token)

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            return self._send(401, "")
        if self.path != "/latest/meta-data/instance-id":
            return self._send(404, "")
        self._send(200, self.instance_id)

    def _send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def imds():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_configured_id_wins_without_asking_anyone():
    def refuse(*args):
        raise AssertionError("no metadata call expected")

    assert instance_identity(" i-0abc ", request=refuse) == "i-0abc"


def test_the_metadata_service_gives_the_id_with_an_imdsv2_token(imds):
    assert instance_identity("", endpoint=imds) == "i-0123456789abcdef0"


def test_the_token_is_required_by_the_stand_in(imds):
    with pytest.raises(OSError):
        http_request("GET", f"{imds}/latest/meta-data/instance-id", {}, 1.0)


def test_metadata_calls_are_short_and_in_order():
    calls = []

    def request(method, url, headers, timeout):
        calls.append((method, url, dict(headers), timeout))
        return "tok" if method == "PUT" else "i-0123456789abcdef0\n"

    assert instance_identity("", request=request, timeout=0.5) == "i-0123456789abcdef0"
    assert calls == [
        ("PUT", "http://169.254.169.254/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, 0.5),
        ("GET", "http://169.254.169.254/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": "tok"}, 0.5),
    ]


def test_no_metadata_service_is_a_clear_error():
    with pytest.raises(IdentityError, match="GPUORCH_INSTANCE_ID"):
        instance_identity("", endpoint=f"http://127.0.0.1:{free_port()}", timeout=0.5)


def test_an_answer_that_is_not_an_instance_id_is_refused():
    with pytest.raises(IdentityError, match="not an instance id"):
        instance_identity("", request=lambda method, *_: "tok" if method == "PUT" else "<html>login</html>")


def test_the_worker_heartbeat_records_when_comfyui_last_answered(store, clock):
    answers = [True]
    beat = WorkerHeartbeat(store, "i-0aaa", 15, running_jobs=lambda: (), clock=clock,
                           comfyui_alive=lambda: answers[-1])
    beat.beat()
    answered = clock()
    clock.advance(15)
    answers.append(False)  # ComfyUI stops answering: the heartbeat goes on, the last answer stays
    beat.beat()

    (report,) = store.all()
    assert (report.heartbeat.at, report.comfyui_at) == (clock(), answered)
