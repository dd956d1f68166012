"""A small REST client for the CLI: GPUORCH_API_URL and GPUORCH_API_KEY, the API's error shape, and exit 1 or 2
on failure."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import click
import requests

TIMEOUT_S = 30
# The API comments on a quiet event stream this often; twice that without a byte means it is gone.
KEEPALIVE_S = 15
# An API process with as many waiting requests as it lets wait answers 503 too_many_waiters with Retry-After: a
# wait or a stream comes back then (the load balancer may pick a process with room), this many times at most.
BUSY_TRIES = 12


def busy_for(answer: requests.Response) -> float | None:
    """The seconds a 503 too_many_waiters asks a waiting request to stay away (Retry-After); None for any other
    answer."""
    if answer.status_code != 503:
        return None
    try:
        code = answer.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    if code != "too_many_waiters":
        return None
    try:
        return float(answer.headers.get("Retry-After", ""))
    except ValueError:
        return 5.0


class Api:
    """Calls the REST API at `base_url`; any failure is printed and ends the command (1 refused, 2 unreachable)."""

    def __init__(self, base_url: str, session: requests.Session | None = None, *, api_key: str = ""):
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), timeout: float = TIMEOUT_S,
             **kwargs: Any) -> dict[str, Any]:
        return self.read(method, path, self._send(method, path, timeout=timeout, **kwargs), ok)

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The API's answer; a busy process's 503 too_many_waiters is asked again after its Retry-After."""
        for _ in range(BUSY_TRIES):
            try:
                answer = self.session.request(method, f"{self.base_url}{path}", **kwargs)
            except requests.RequestException as exc:
                fail(2, f"cannot reach the API at {self.base_url}: {type(exc).__name__}")
            wait_s = busy_for(answer)
            if wait_s is None:
                return answer
            answer.close()
            time.sleep(wait_s)
        return answer

    def events(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) of a Server-Sent Events answer, as they come, until the stream ends."""
        answer = self._send("GET", path, stream=True, timeout=(TIMEOUT_S, 2 * KEEPALIVE_S),
                            headers={"Accept": "text/event-stream"})
        if answer.status_code != 200:
            self.read("GET", path, answer, ())
        with answer:
            event, data = "message", []
            try:
                for line in answer.iter_lines(decode_unicode=True):
                    if line:
                        field, _, value = line.partition(":")
                        if field == "event":
                            event = value.strip()
                        elif field == "data":
                            data.append(value[1:] if value.startswith(" ") else value)
                        continue
                    if data:  # a blank line ends an event; a comment alone (keep-alive) makes none
                        yield event, json.loads("\n".join(data))
                    event, data = "message", []
            except requests.RequestException as exc:
                fail(2, f"the API's event stream broke off: {type(exc).__name__}")

    def read(self, method: str, path: str, answer: requests.Response, ok: tuple[int, ...]) -> dict[str, Any]:
        """The answer's JSON body when its status is one of `ok`; otherwise the error printed and the command ended."""
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code in ok and isinstance(body, dict):
            return body
        if answer.status_code == 401 and not self.session.headers.get("Authorization"):
            fail(1, "the API needs a key: set GPUORCH_API_KEY (make one with `gpuorch keys create --owner NAME`)")
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            fail(2 if answer.status_code >= 500 else 1, f"{method} {path}: HTTP {answer.status_code} from the API")
        lines = [f"error: {error.get('message') or error.get('code')} ({error.get('code')}, HTTP {answer.status_code})"]
        for field, reasons in sorted((error.get("fields") or {}).items()):
            lines.extend(f"  {field}: {reason}" for reason in reasons)
        click.echo("\n".join(lines), err=True)
        sys.exit(2 if answer.status_code in (502, 503, 504) else 1)


def fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
