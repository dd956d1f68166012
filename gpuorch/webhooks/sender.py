"""POSTing one webhook with the inputs' SSRF guard: the address checked, then connected to; no redirect followed;
bounded in time and in what is read back."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from urllib3.exceptions import HTTPError, SSLError

from gpuorch.inputs import InputError, Resolver, resolve_public, system_resolver
from gpuorch.inputs.http_fetch import pinned_pool
from gpuorch.webhooks.events import webhook_uri

# What is read of a receiver's answer: its status matters, its body only for the error a person reads.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "gpuorch-webhooks"


@dataclass(frozen=True)
class Answer:
    """A receiver's answer to one POST: its status (None: none came), or why it failed, and how long it took."""

    status_code: int | None
    error: str | None
    duration_ms: float


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, allow_insecure: bool,
         resolver: Resolver = system_resolver, monotonic: Callable[[], float] = time.monotonic) -> Answer:
    """POST `body` to `url` once. Never raises for the receiver's sake: a refused address, a refused or slow
    connection, a redirect (followed nowhere) or a non-2xx status each come back as the Answer's error."""
    started = monotonic()

    def answer(status: int | None, error: str | None) -> Answer:
        return Answer(status, error, (monotonic() - started) * 1000)

    try:
        uri = webhook_uri(url, allow_insecure=allow_insecure)
        address = resolve_public(uri.host, uri.port, resolver=resolver, allow_loopback=allow_insecure)
    except InputError as exc:
        return answer(None, f"refused: {exc.reason}")
    pool = pinned_pool(uri.scheme, uri.host, uri.port, address, connect_timeout=min(5.0, timeout_s),
                       read_timeout=timeout_s)
    request_headers = {"Host": uri.host_header, "User-Agent": USER_AGENT, "Content-Type": "application/json",
                       "Accept-Encoding": "identity", "Connection": "close", **headers}
    try:
        with pool:
            response = pool.urlopen("POST", uri.target, body=body, headers=request_headers, redirect=False,
                                    retries=False, preload_content=False, decode_content=False)
            try:
                seen = response.read1(MAX_ANSWER_BYTES) if response.status >= 300 else b""
            finally:
                response.release_conn()
                response.close()
    except SSLError as exc:
        return answer(None, f"TLS verification failed: {exc}")
    except (HTTPError, OSError) as exc:
        return answer(None, f"no answer: {type(exc).__name__}: {exc}")
    if response.status >= 300:
        what = "redirected (not followed)" if 300 <= response.status < 400 else "answered"
        text = seen[:200].decode("utf-8", "replace").strip()
        return answer(response.status, f"{what} {response.status}" + (f": {text}" if text else ""))
    return answer(response.status, None)
