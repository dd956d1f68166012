"""A small REST client for the CLI: GPUORCH_API_URL and GPUORCH_API_KEY, the API's error shape, and exit 1 or 2
on failure."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
import requests

TIMEOUT_S = 30


class Api:
    """Calls the REST API at `base_url`; any failure is printed and ends the command (1 refused, 2 unreachable)."""

    def __init__(self, base_url: str, session: requests.Session | None = None, *, api_key: str = ""):
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            answer = self.session.request(method, url, timeout=TIMEOUT_S, **kwargs)
        except requests.RequestException as exc:
            fail(2, f"cannot reach the API at {self.base_url}: {type(exc).__name__}")
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
