"""gunicorn's threaded worker, answering the requests gunicorn itself refuses in the API's one JSON error shape."""

from __future__ import annotations

import json
import re

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from webapp.errors import error_body, reason_code

# The status line that starts gunicorn's page: "HTTP/1.1 414 URI Too Long".
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) ([^\r\n]*)")


class JsonErrorWorker(ThreadWorker):
    """gunicorn's gthread worker; the answers gunicorn writes itself are JSON in the API's error shape.

    gunicorn refuses some requests before the app sees them (a request line over limit_request_line: 414, a header
    over limit_request_field_size: 431, a malformed header: 400) and answers with an HTML page.
    """

    def handle_error(self, req, client, addr, exc):
        # gunicorn's own handle_error still chooses the status (from its exception classes, which change between
        # versions) and logs the refusal and its access line; it writes to a recorder, and only its page is ours.
        page = _PageRecorder()
        super().handle_error(req, page, addr, exc)
        status_line = _STATUS_LINE.match(page.written)
        status, reason = ((int(status_line[1]), status_line[2].decode("latin-1")) if status_line
                          else (500, "Internal Server Error"))
        # A refusal says what was wrong with the request; a failure of the server's own says nothing more.
        message = f"{reason}: {exc}" if status < 500 else reason
        body = json.dumps(error_body(reason_code(reason), message)).encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except Exception:
            self.log.debug("Failed to send error message.")


class _PageRecorder:
    """Stands in for the client's socket while gunicorn writes its error page, keeping what it wrote."""

    def __init__(self) -> None:
        self.written = b""

    def gettimeout(self) -> float:
        return 0.0  # as a non-blocking socket: gunicorn then writes to it without switching its mode

    def sendall(self, data: bytes) -> None:
        self.written += data
