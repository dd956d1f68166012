"""Where processes connect: every attempt a Python process makes (an audit hook), and what any process has open.

Two views, because neither sees everything. The audit hook, installed in every Python process started with
`audited_env()` (a sitecustomize module on PYTHONPATH), records each `socket.connect` and each name lookup as it
is tried, even one that fails at once; it cannot see connections made in C, such as kombu's pycurl. A sample of a
process's open sockets (psutil, as `ss -p` reads them) sees those, but only while they are open.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

AUDIT_LOG_VARIABLE = "CONNECTIONS_AUDIT_LOG"

# Installed as sitecustomize.py: Python imports it at the start of every process whose path holds it.
SITECUSTOMIZE = f'''\
"""Records every connection attempt and name lookup of this process (tests/support/connections.py)."""
import json, os, socket, sys

_LOG = os.environ.get({AUDIT_LOG_VARIABLE!r})
_FAMILIES = {{socket.AF_INET: "inet", socket.AF_INET6: "inet6"}}


def _record(kind, host, port):
    line = json.dumps({{"pid": os.getpid(), "kind": kind, "host": str(host), "port": port}}) + "\\n"
    # One short write in append mode: lines from the processes and their forks do not interleave.
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _hook(event, args):
    if event == "socket.connect" and getattr(args[0], "family", None) in _FAMILIES:
        _record("connect", args[1][0], args[1][1])
    elif event == "socket.getaddrinfo":
        _record("lookup", args[0].decode() if isinstance(args[0], bytes) else args[0], args[1])


if _LOG:
    sys.addaudithook(_hook)
'''


@dataclass(frozen=True)
class Attempt:
    pid: int
    kind: str  # "connect" or "lookup"
    host: str
    port: object


def audited_env(folder: Path) -> dict[str, str]:
    """Environment variables under which every Python process records its attempts in `folder`/attempts.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, AUDIT_LOG_VARIABLE: str(folder / "attempts.jsonl")}


def recorded_attempts(folder: Path) -> list[Attempt]:
    log = folder / "attempts.jsonl"
    if not log.exists():
        return []
    return [Attempt(**json.loads(line)) for line in log.read_text(encoding="utf-8").splitlines() if line]


def is_loopback(host: str) -> bool:
    """An address (or the name `localhost`) on this machine's loopback; a name lookup of None asks for nothing."""
    if host in ("localhost", "None", ""):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def open_remote_addresses(pids: list[int]) -> dict[int, set[tuple[str, int]]]:
    """Each live process's remote addresses of its TCP and UDP sockets now (listening ones have none)."""
    found: dict[int, set[tuple[str, int]]] = {}
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        remotes = {(c.raddr.ip, c.raddr.port) for c in connections if c.raddr}
        if remotes:
            found[pid] = remotes
    return found


def family(pid: int) -> list[int]:
    """A process and every descendant of it that is alive now."""
    try:
        root = psutil.Process(pid)
        return [root.pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []
