"""Fetching an input over HTTPS without letting the URL reach inside the network (SSRF)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from gpuorch.inputs.addresses import IPAddress, Resolver, resolve_public, system_resolver
from gpuorch.inputs.errors import InputRejected, InputUnavailable
from gpuorch.inputs.policy import InputPolicy
from gpuorch.inputs.uri import HttpUri, parse_input_uri

__all__ = ["fetch_http", "pinned_pool"]

logger = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 64 * 1024


def pinned_pool(scheme: str, host: str, port: int, address: IPAddress, *, connect_timeout: float,
                read_timeout: float, ca_certs: str | None = None) -> urllib3.HTTPConnectionPool:
    """A connection pool whose socket goes to ``address`` (checked already) while the Host header, SNI and
    certificate use ``host``: DNS rebinding cannot swap the address between the check and the connection.

    A bare pool, not a PoolManager: no proxy from the environment, no retries, no redirects of its own.
    """
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(address), port, timeout=timeout, retries=False, maxsize=1,
            cert_reqs="CERT_REQUIRED", ca_certs=ca_certs or certifi.where(),
            server_hostname=host, assert_hostname=host,
        )
    return urllib3.HTTPConnectionPool(str(address), port, timeout=timeout, retries=False, maxsize=1)


def _pool(uri: HttpUri, address: IPAddress, policy: InputPolicy) -> urllib3.HTTPConnectionPool:
    return pinned_pool(uri.scheme, uri.host, uri.port, address, connect_timeout=policy.connect_timeout,
                       read_timeout=policy.read_timeout, ca_certs=policy.ca_certs)


def _open(pool: urllib3.HTTPConnectionPool, uri: HttpUri) -> urllib3.BaseHTTPResponse:
    headers = {
        "Host": uri.host_header,
        "User-Agent": "gpuorch-input-fetcher",
        "Accept": "image/*",
        "Accept-Encoding": "identity",  # the byte cap then counts what we decode, not a gzip bomb
        "Connection": "close",
    }
    try:
        return pool.urlopen("GET", uri.target, headers=headers, redirect=False, retries=False,
                            preload_content=False, decode_content=False)
    except SSLError as exc:
        raise InputRejected(f"TLS verification failed for {uri.host}: {exc}") from exc
    except NewConnectionError as exc:  # a subclass of the timeout error, so caught first
        raise InputUnavailable(f"could not connect to {uri.host}: {exc}") from exc
    except Urllib3Timeout as exc:
        raise InputUnavailable(f"timed out connecting to {uri.host}") from exc
    except (HTTPError, OSError) as exc:
        raise InputUnavailable(f"could not connect to {uri.host}: {exc}") from exc


def _check_status(uri: HttpUri, status: int) -> None:
    if status == 200:
        return
    if status in _TRANSIENT or status >= 500:
        raise InputUnavailable(f"{uri.host} answered {status}")
    raise InputRejected(f"{uri.url} answered {status}")


def _read_capped(response: urllib3.BaseHTTPResponse, uri: HttpUri, policy: InputPolicy,
                 deadline: float, clock: Callable[[], float]) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
        raise InputRejected(f"{uri.url} is {int(declared)} bytes, over the limit of {policy.max_bytes}")
    chunks, size = [], 0
    try:
        # read1 hands back whatever arrived, so the checks below run while a slow body trickles in.
        while chunk := response.read1(_CHUNK):
            size += len(chunk)
            if size > policy.max_bytes:
                raise InputRejected(f"{uri.url} is over the limit of {policy.max_bytes} bytes")
            # The read timeout bounds each wait; this bounds a server that drips bytes forever.
            if clock() > deadline:
                raise InputUnavailable(f"{uri.url} took longer than {policy.total_timeout:g}s")
            chunks.append(chunk)
    except Urllib3Timeout as exc:
        raise InputUnavailable(f"timed out reading {uri.url}") from exc
    except (HTTPError, OSError) as exc:
        raise InputUnavailable(f"reading {uri.url} failed: {exc}") from exc
    return b"".join(chunks)


def fetch_http(
    uri: HttpUri,
    policy: InputPolicy,
    *,
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """Download ``uri`` under ``policy``; raises InputRejected or InputUnavailable.

    Each hop resolves the name, refuses it unless every address is public, then connects to the
    very address it checked (DNS rebinding cannot swap it) while TLS still verifies the name and
    sends it as SNI. Redirects are followed by hand, each vetted like the first; the body is
    capped in bytes and in total time while it streams.
    """
    deadline = clock() + policy.total_timeout
    for hop in range(policy.max_redirects + 1):
        address = resolve_public(uri.host, uri.port, resolver=resolver,
                                 allow_loopback=policy.allow_insecure_local)
        if clock() > deadline:
            raise InputUnavailable(f"{uri.url} took longer than {policy.total_timeout:g}s")
        with _pool(uri, address, policy) as pool:
            response = _open(pool, uri)
            try:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise InputRejected(f"{uri.url} redirected without a Location")
                    target = parse_input_uri(urljoin(uri.url, location), policy)
                    if not isinstance(target, HttpUri):
                        raise InputRejected(f"{uri.url} redirected away from the web ({target.scheme}://)")
                    logger.info("input %s redirected to %s (hop %d)", uri.url, target.url, hop + 1)
                    uri = target
                    continue
                _check_status(uri, response.status)
                return _read_capped(response, uri, policy, deadline, clock)
            finally:
                response.release_conn()
                response.close()
    raise InputRejected(f"more than {policy.max_redirects} redirects")
