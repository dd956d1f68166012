"""systemd's Restart= for the local GPU host's processes, as it applies to the units on the GPU instance.

On AWS, comfyui.service and gpuorch-gpu-worker.service restart their process after any exit (Restart=always: a
crash, and a clean exit too, such as a Celery worker's remote shutdown from Flower) once their RestartSec has
passed, except an exit status their RestartPreventExitStatus names (the GPU worker's recorded refusal); a unit with
Restart=on-failure leaves a clean exit alone. The local GPU host keeps its processes the same way, so a crash, a
remote shutdown and a refusal behave locally as they do in production.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from typing import Callable

from gpuorch_dev.local.stack import Process, StackError

log = logging.getLogger(__name__)

# systemd's clean exits besides 0: death by these signals is a requested stop, not a failure (systemd.service).
CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})

# systemd's Restart= values that the units use.
ALWAYS = "always"
ON_FAILURE = "on-failure"
RESTART_RULES = (ALWAYS, ON_FAILURE)

# What SupervisedProcess.check() found.
RUNNING = "running"
STOPPED = "stopped"  # exited in a way its unit does not restart
WAITING = "waiting"  # exited: restarted once its restart delay has passed
RESTARTED = "restarted"


def exited_cleanly(returncode: int) -> bool:
    """Exit status 0, or death by a clean signal (Popen's returncode is minus the signal's number)."""
    return returncode == 0 or (returncode < 0 and -returncode in CLEAN_SIGNALS)


def restarted(returncode: int, restart: str, prevent_restart: frozenset[int] = frozenset()) -> bool:
    """Pure: whether a unit with `restart` (systemd's Restart=) starts its process again after it exited with
    `returncode`; `prevent_restart` are the exit statuses never restarted (RestartPreventExitStatus), whatever the
    rule."""
    if restart not in RESTART_RULES:
        raise ValueError(f"Restart={restart} is not one of {RESTART_RULES}")
    if returncode in prevent_restart:
        return False
    return restart == ALWAYS or not exited_cleanly(returncode)


def after_exit(returncode: int | None, exited_at: float | None, now: float, restart_s: float,
               prevent_restart: frozenset[int] = frozenset(), restart: str = ALWAYS) -> str:
    """Pure: what becomes of a process that has `returncode` (None: still running), seen exited at `exited_at`."""
    if returncode is None:
        return RUNNING
    if not restarted(returncode, restart, prevent_restart):
        return STOPPED
    return RESTARTED if exited_at is not None and now - exited_at >= restart_s else WAITING


@dataclass(frozen=True)
class Unit:
    """One process of the host, as a systemd unit describes it: how it starts, its RestartSec, its
    RestartPreventExitStatus and its Restart=."""

    name: str
    start: Callable[[], Process]
    restart_s: float
    prevent_restart: frozenset[int] = frozenset()
    restart: str = ALWAYS


class SupervisedProcess:
    """A unit's process, started at once and restarted as its unit says whenever `check()` finds its delay passed."""

    def __init__(self, unit: Unit, clock: Callable[[], float] = time.monotonic):
        self.unit = unit
        self.clock = clock
        self.process = unit.start()
        self.starts = 1
        self.exited_at: float | None = None

    def check(self) -> str:
        returncode = self.process.popen.poll()
        now = self.clock()
        if returncode is not None and self.exited_at is None:
            self.exited_at = now
            if returncode in self.unit.prevent_restart:
                log.warning("%s exited with %d; not restarted (RestartPreventExitStatus)\n%s", self.unit.name,
                            returncode, self.process.tail(10))
            elif restarted(returncode, self.unit.restart, self.unit.prevent_restart):
                log.warning("%s exited with %d; restarting it in %.0f s (Restart=%s)\n%s", self.unit.name,
                            returncode, self.unit.restart_s, self.unit.restart, self.process.tail(10))
        outcome = after_exit(returncode, self.exited_at, now, self.unit.restart_s, self.unit.prevent_restart,
                             self.unit.restart)
        if outcome == RESTARTED:
            self.starts += 1
            try:
                self.process = self.unit.start()
            except StackError as exc:
                # A start that failed counts as a failed run: the next try waits the restart delay again.
                log.error("%s did not start again (start %d): %s", self.unit.name, self.starts, exc)
                self.exited_at = now
                return WAITING
            self.exited_at = None
            log.info("%s started again (start %d)", self.unit.name, self.starts)
        return outcome

    def stop(self) -> None:
        self.process.stop()
