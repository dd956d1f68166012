"""A guard for tests that must not reach past loopback: look-ups and connections elsewhere are refused and named."""

from __future__ import annotations

import ipaddress
import socket
from contextlib import contextmanager
from typing import Iterator


def is_loopback(host) -> bool:
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Within the block, resolving or connecting to anything but loopback fails; leaving it, AssertionError names
    every such attempt (caught or not by the code under test)."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not is_loopback(host):
            attempts.append(f"look-up of {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: refused by the test's loopback guard")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            attempts.append(f"connection to {address!r}")
            raise ConnectionRefusedError(f"{address}: refused by the test's loopback guard")
        return real_connect(sock, address)

    socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
    try:
        yield attempts
    finally:
        socket.getaddrinfo, socket.socket.connect = real_getaddrinfo, real_connect
    assert not attempts, f"tried to reach past loopback: {attempts}"
