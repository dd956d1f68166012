"""A local GPU instance's metadata service on loopback, answering as EC2's does over IMDSv2: a session token by PUT,
then with it the instance id, its market (instance-life-cycle) and its spot interruption notice (instance-action,
404 until one is raised).

A test raises a notice with `raise_notice(seconds)`, a person with `POST /gpuorch-dev/spot-interruption?seconds=N`
(`gpuorch-dev up` prints the line); the local host agent then stops the instance at the notice's time, as EC2 does
with a persistent spot request that stops on interruption.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from gpuorch.clock import utc_now
from gpuorch.execution.interruption import Notice
from lifecycle.model import SPOT

log = logging.getLogger(__name__)

# EC2 gives two minutes between the notice and the interruption.
NOTICE_LEAD_S = 120.0
RAISE_PATH = "/gpuorch-dev/spot-interruption"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TOKEN_TTL_S = 21600


class NotSpot(ValueError):
    """Only a spot instance is interrupted."""


class LocalInstanceMetadata:
    """The metadata service of one local instance, served from a thread on a free loopback port."""

    def __init__(self, instance_id: str, market: str, *, clock: Callable[[], datetime] = utc_now):
        self.instance_id, self.market, self.clock = instance_id, market, clock
        self._notice: Notice | None = None
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"imds-{instance_id}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalInstanceMetadata":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LocalInstanceMetadata":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def notice(self) -> Notice | None:
        with self._lock:
            return self._notice

    def raise_notice(self, seconds: float = NOTICE_LEAD_S, action: str = "stop") -> Notice:
        """EC2 will interrupt this (spot) instance in `seconds`: from now on instance-action says so."""
        if self.market != SPOT:
            raise NotSpot(f"{self.instance_id} is {self.market}: only a spot instance is interrupted")
        # EC2 gives the time to the second.
        at = (self.clock() + timedelta(seconds=seconds)).replace(microsecond=0)
        with self._lock:
            self._notice = Notice(action, at)
        log.warning("spot interruption notice raised on %s: %s at %s", self.instance_id, action, at.isoformat())
        return self._notice

    def clear_notice(self) -> None:
        """The instance booted again: no notice stands."""
        with self._lock:
            self._notice = None

    def _token(self, ttl: str | None) -> str | None:
        try:
            if ttl is None or not 1 <= int(ttl) <= MAX_TOKEN_TTL_S:
                return None
        except ValueError:
            return None
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def _answer(self, path: str, token: str | None) -> tuple[int, str]:
        with self._lock:
            known, notice = token in self._tokens, self._notice
        if not known:
            return 401, ""
        if path == "/latest/meta-data/instance-id":
            return 200, self.instance_id
        if path == "/latest/meta-data/instance-life-cycle":
            return 200, self.market
        if path == "/latest/meta-data/spot/instance-action" and notice is not None:
            at = notice.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            return 200, json.dumps({"action": notice.action, "time": at})
        return 404, ""

    def _handler_class(self):
        metadata = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the worker's and agent's logs say what matters
                pass

            def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                token = metadata._token(self.headers.get(TOKEN_TTL_HEADER)) if self.path == "/latest/api/token" else None
                self._send(200, token) if token else self._send(400, "")

            def do_GET(self) -> None:
                self._send(*metadata._answer(urlsplit(self.path).path, self.headers.get(TOKEN_HEADER)))

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                if url.path != RAISE_PATH:
                    return self._send(404, "")
                try:
                    seconds = float(parse_qs(url.query).get("seconds", [NOTICE_LEAD_S])[0])
                    notice = metadata.raise_notice(seconds)
                except NotSpot as exc:
                    return self._send(409, json.dumps({"error": str(exc)}), "application/json")
                except ValueError:
                    return self._send(400, json.dumps({"error": "seconds must be a number"}), "application/json")
                self._send(201, json.dumps({"action": notice.action, "time": notice.at.isoformat()}),
                           "application/json")

        return Handler
