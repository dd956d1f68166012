"""Fixtures: a replay server built from the recorded traces, and clients pointed at it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gpuorch.comfyui.client import ComfyClient, PollPolicy

from .replay import Behaviour, RecordedRun, ReplayServer, recorded_runs

# Short intervals keep the suite fast; the logic under test is the same as with the defaults.
FAST = PollPolicy(poll_interval=0.02, check_interval=0.25, reconnect_interval=0.05, connect_timeout=2.0,
                  unavailable_grace=0.3)


@pytest.fixture(scope="session")
def runs() -> dict[str, RecordedRun]:
    return recorded_runs()


@pytest.fixture
def replay(runs: dict[str, RecordedRun]) -> Iterator[Callable[..., ReplayServer]]:
    """``replay(behaviour)`` starts a stand-in that knows every recorded run."""
    started: list[ReplayServer] = []

    def start(behaviour: Behaviour | None = None) -> ReplayServer:
        server = ReplayServer(behaviour)
        for run in runs.values():
            server.add_run(run)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., ComfyClient]]:
    clients: list[ComfyClient] = []

    def make(url: str, client_id: str = "worker-1", **kwargs: object) -> ComfyClient:
        kwargs.setdefault("poll", FAST)
        kwargs.setdefault("timeout", 5.0)
        client = ComfyClient(url, client_id=client_id, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _WebPage(BaseHTTPRequestHandler):
    """Answers every request with an HTML page, like a URL that points at the wrong service."""

    def _page(self) -> None:
        body = b"<html><body>Welcome</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_page_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
