"""A small REST client for the CLI: GPUORCH_API_URL and GPUORCH_API_KEY, the API's error shape, and exit 1 or 2
on failure."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

import click
import requests

TIMEOUT_S = 30
# The API comments on a quiet event stream this often; twice that without a byte means it is gone.
KEEPALIVE_S = 15


class Api:
    """Calls the REST API at `base_url`; any failure is printed and ends the command (1 refused, 2 unreachable)."""

    def __init__(self, base_url: str, session: requests.Session | None = None, *, api_key: str = ""):
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), timeout: float = TIMEOUT_S,
             **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            answer = self.session.request(method, url, timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            fail(2, f"cannot reach the API at {self.base_url}: {type(exc).__name__}")
        return self.read(method, path, answer, ok)

    def events(self, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) of a Server-Sent Events answer, as they come, until the stream ends."""
        try:
            answer = self.session.get(f"{self.base_url}{path}", stream=True, timeout=(TIMEOUT_S, 2 * KEEPALIVE_S),
                                      headers={"Accept": "text/event-stream"})
        except requests.RequestException as exc:
            fail(2, f"cannot reach the API at {self.base_url}: {type(exc).__name__}")
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
