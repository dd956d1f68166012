"""The local stack's stop: the Procfile processes' graceful shutdowns overlap, and what they use outlives them."""

from __future__ import annotations

import sys

from gpuorch_dev.local.stack import LocalStack
from tests.integration.conftest import wait_for

# Notes each step in a shared file (appends of one short line do not interleave): up once its SIGTERM handler
# is in place; on SIGTERM, term, then gone a moment later, as a worker finishing its warm shutdown.
GRACEFUL = """
import signal, sys, time
name, events = sys.argv[1], sys.argv[2]
def note(what):
    with open(events, "a") as out:
        out.write(f"{what} {name}\\n")
def shut_down(*_):
    note("term")
    time.sleep(0.3)
    note("gone")
    sys.exit(0)
signal.signal(signal.SIGTERM, shut_down)
note("up")
while True:
    time.sleep(0.05)
"""


def test_stop_ends_the_procfile_processes_together_then_the_services_they_use(tmp_path):
    script, events = tmp_path / "graceful.py", tmp_path / "events.log"
    script.write_text(GRACEFUL)
    procfile = tmp_path / "Procfile"
    procfile.write_text("".join(f"{name}: {sys.executable} {script} {name} {events}\n" for name in ("api", "worker")))
    stack = LocalStack(run_dir=tmp_path / "run")
    stack.start("moto", [sys.executable, str(script), "moto", str(events)])
    stack.start_procfile(["api", "worker"], procfile=procfile)
    wait_for(lambda: events.exists() and len(events.read_text().splitlines()) == 3, 30, message="all three up")

    stack.stop()

    steps = events.read_text().splitlines()[3:]
    assert sorted(steps[:2]) == ["term api", "term worker"], steps  # both told before either is gone
    assert sorted(steps[2:4]) == ["gone api", "gone worker"], steps
    assert steps[4:] == ["term moto", "gone moto"], steps
    assert stack.processes == []
