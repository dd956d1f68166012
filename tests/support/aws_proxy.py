"""A fault-injecting HTTP proxy in front of the moto server: cut AWS off, or fail chosen requests N times.

The stack's processes reach AWS through it (GPUORCH_AWS_ENDPOINT_URL is the proxy's URL) while the
test's own clients talk to moto directly, so moto's state is never touched by a fault: the proxy only
decides whether a request gets there. Every AWS call of the stack is plain HTTP/1.1 to one endpoint
(boto3, kombu's pycurl, Celery's DynamoDB backend), so one proxy sees them all.

    down()                    every request has its connection reset, until up()
    fail(target="UpdateItem", times=3, error="throttle")
                              the next 3 matching requests answer a throttling error; the rest pass
    fail(operation="StartInstances", body="i-0abc", error="capacity")
                              EC2 refuses to start that instance for want of capacity
    fail(..., error="lost")   the request reaches moto, its answer is dropped (the connection reset):
                              the caller cannot tell whether its write happened
    observe(callback)         callback(request, status, body) for every request moto answered, before the
                              answer is relayed (or dropped): e.g. tests/support/held_messages.py
"""

from __future__ import annotations

import collections
import dataclasses
import http.client
import json
import re
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

# Headers that describe one hop, not the message: the proxy sets its own.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te", "upgrade"}

# What each error kind answers, in AWS's JSON protocol (DynamoDB, SQS) and its XML one (S3, EC2, SNS):
# (status, error code). botocore retries both kinds; "reset" drops the connection without forwarding,
# "lost" forwards the request and then drops the connection instead of relaying the answer.
ERRORS = {
    "internal": {"json": (500, "InternalServerError"), "xml": (500, "InternalError")},
    "throttle": {"json": (400, "ThrottlingException"), "xml": (503, "SlowDown")},
    "unavailable": {"json": (503, "ServiceUnavailable"), "xml": (503, "ServiceUnavailable")},
    # EC2's refusals to start an instance (EC2 speaks only XML): no capacity in either market (a server error, not
    # retried by the pool), and no spare spot capacity.
    "capacity": {"xml": (500, "InsufficientInstanceCapacity")},
    "spot_capacity": {"xml": (400, "UnfulfillableCapacity")},
}


@dataclass
class Rule:
    """Requests matching every given field fail `times` times (None: until cleared); `matched` counts them."""

    method: str | None = None
    operation: str | None = None  # the AWS operation (Request.operation), e.g. "StartInstances"
    path: str | None = None  # a regular expression searched in the path (query string included)
    target: str | None = None  # a substring of X-Amz-Target, e.g. "DynamoDB_20120810.UpdateItem" or "UpdateItem"
    body: str | None = None  # a substring of the request body
    times: int | None = 1
    error: str = "internal"
    matched: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        if self.error not in ERRORS and self.error not in ("reset", "lost"):
            raise ValueError(f"unknown error kind {self.error!r}: one of {sorted(ERRORS)}, 'reset' or 'lost'")

    def matches(self, request: "Request") -> bool:
        return (
            (self.method is None or request.method == self.method)
            and (self.operation is None or request.operation == self.operation)
            and (self.path is None or re.search(self.path, request.path) is not None)
            and (self.target is None or self.target in request.target)
            and (self.body is None or self.body in request.body.decode("latin-1"))
        )

    def take(self, request: "Request") -> bool:
        """True when this request is one to fail (and counts it)."""
        if not self.matches(request):
            return False
        with self._lock:
            if self.times is not None and self.matched >= self.times:
                return False
            self.matched += 1
            return True

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.matched >= self.times


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        return self.headers.get("x-amz-target", "")

    @property
    def operation(self) -> str:
        """The AWS operation: X-Amz-Target's, the query protocol's Action, or the method for S3."""
        if self.target:
            return self.target.rsplit(".", 1)[-1]
        action = re.search(rb"(?:^|&)Action=(\w+)", self.body) or re.search(r"[?&]Action=(\w+)", self.path)
        if action:
            value = action.group(1)
            return value.decode() if isinstance(value, bytes) else value
        return f"S3 {self.method}"

    @property
    def protocol(self) -> str:
        json_type = self.headers.get("content-type", "").startswith("application/x-amz-json")
        return "json" if self.target or json_type else "xml"

    @property
    def is_query(self) -> bool:
        """The query protocol (EC2, SNS): an Action parameter, and errors in a <Response><Errors> document."""
        return self.protocol == "xml" and self.operation != f"S3 {self.method}"


def error_response(kind: str, request: Request) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body AWS would send for an error of this kind, in the request's protocol."""
    status, code = ERRORS[kind][request.protocol]
    message = "injected by the test's AWS proxy"
    if request.protocol == "json":
        body = json.dumps({"__type": f"com.amazonaws.injected#{code}", "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
    elif request.is_query:
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>injected</RequestID></Response>").encode()
        headers = {"Content-Type": "text/xml"}
    else:
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        headers = {"Content-Type": "application/xml"}
    return status, headers, body


class AwsProxy:
    """Forwards HTTP to `upstream` from a loopback port; `url` is what the stack uses as its AWS endpoint."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._down = threading.Event()
        self.forwarded = 0
        self.refused = 0  # requests reset while down
        self.refused_requests: list[Request] = []  # those requests, their bodies cut to 2 KiB
        self.operations: collections.Counter[str] = collections.Counter()  # every request seen, by operation
        self._observers: list[Callable[[Request, int, bytes], None]] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "AwsProxy":
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "AwsProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def down(self) -> None:
        """AWS unreachable: every request from now on has its connection reset without an answer."""
        self._down.set()

    def up(self) -> None:
        self._down.clear()

    @property
    def is_down(self) -> bool:
        return self._down.is_set()

    def was_refused(self, **match) -> bool:
        """Whether a request matching `match` (Rule's fields: method, path, target, body) was reset while down."""
        rule = Rule(times=None, **match)
        return any(rule.matches(request) for request in list(self.refused_requests))

    def fail(self, *, method: str | None = None, operation: str | None = None, path: str | None = None,
             target: str | None = None, body: str | None = None, times: int | None = 1, error: str = "internal") -> Rule:
        """Fail the next `times` requests matching every given field (None: all of them, until cleared)."""
        rule = Rule(method=method, operation=operation, path=path, target=target, body=body, times=times, error=error)
        with self._lock:
            self._rules.append(rule)
        return rule

    def observe(self, callback: Callable[[Request, int, bytes], None]) -> None:
        """Call `callback(request, status, body)` for every request moto answers, before its answer goes back."""
        with self._lock:
            self._observers.append(callback)

    def _answered(self, request: Request, status: int, body: bytes) -> None:
        with self._lock:
            observers = list(self._observers)
        for callback in observers:
            callback(request, status, body)

    def clear(self) -> None:
        """Remove every rule and bring the endpoint up."""
        with self._lock:
            self._rules.clear()
        self.up()

    def decide(self, request: Request) -> str | None:
        """The error kind to answer `request` with, or None to forward it."""
        if self._down.is_set():
            return "reset"
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            if rule.take(request):
                return rule.error
        return None

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, *args) -> None:  # quiet: the stack's own logs say what matters
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline().strip():  # trailers, up to the blank line
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _reset(self) -> None:
                # SO_LINGER 0: close with a RST, as a dead host's firewall or a dropped NAT entry would.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True

            def _forward(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(request.body))
                for attempt in (1, 2):
                    if self.upstream is None:
                        self.upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                    try:
                        self.upstream.request(request.method, request.path, body=request.body, headers=headers)
                        answer = self.upstream.getresponse()
                        return answer.status, answer.getheaders(), answer.read()
                    except (http.client.HTTPException, OSError):
                        # A kept-alive upstream connection the server closed: one fresh try.
                        self.upstream.close()
                        self.upstream = None
                        if attempt == 2:
                            raise
                raise AssertionError("unreachable")

            def _handle(self) -> None:
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                  self._read_body())
                proxy.operations[request.operation] += 1
                verdict = proxy.decide(request)
                if verdict == "reset":
                    proxy.count("refused")
                    proxy.refused_requests.append(dataclasses.replace(request, body=request.body[:2048]))
                    self._reset()
                    return
                if verdict == "lost":
                    try:
                        status, _pairs, body = self._forward(request)
                        proxy._answered(request, status, body)
                    finally:
                        self._reset()
                    return
                if verdict is not None:
                    status, headers, body = error_response(verdict, request)
                    pairs = list(headers.items())
                else:
                    try:
                        status, pairs, body = self._forward(request)
                    except (http.client.HTTPException, OSError):
                        self._reset()
                        return
                    proxy.count("forwarded")
                    proxy._answered(request, status, body)
                self.send_response_only(status)
                for name, value in pairs:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.wfile.flush()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    if self.upstream is not None:
                        self.upstream.close()

        return Handler
