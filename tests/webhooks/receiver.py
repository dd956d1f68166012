"""A webhook receiver on loopback, as a caller would run one: it verifies each request with the Standard Webhooks
library and answers as the test tells it (2xx, an error, a redirect, or not before a delay)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: dict | None  # the payload, when its signature verified
    problem: str | None


@dataclass
class Receiver:
    """Records every POST; `answers` is consumed one per request (then `default`): a status, or ("sleep", s).
    `answers_by_event` (event type: answers) is consumed first by the requests of that event, whatever their order."""

    secret: str
    answers: list = field(default_factory=list)
    answers_by_event: dict[str, list] = field(default_factory=dict)
    default: int = 204
    received: list[Received] = field(default_factory=list)

    def __post_init__(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    verified, problem = Webhook(receiver.secret).verify(body, headers), None
                except WebhookVerificationError as exc:
                    verified, problem = None, str(exc)
                receiver.received.append(Received(headers, body, verified, problem))
                for_event = receiver.answers_by_event.get((verified or {}).get("type"))
                if for_event:
                    answer = for_event.pop(0)
                else:
                    answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = 204
                if isinstance(answer, tuple) and answer[0] == "redirect":
                    self.send_response(307)
                    self.send_header("Location", answer[1])
                    self.end_headers()
                    return
                self.send_response(answer)
                self.end_headers()
                if answer >= 400:
                    self.wfile.write(json.dumps({"error": "not now"}).encode())

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/gpuorch"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def verified(self) -> list[dict]:
        return [r.verified for r in self.received if r.verified is not None]
