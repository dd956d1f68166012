"""Armed faults at work: fired from the executor's hooks or at once, with the outages that refuse requests."""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gpuorch_dev.emulator.executor import ExecutionHooks, Interrupted
from gpuorch_dev.emulator.faults import (
    KINDS,
    FaultSpec,
    Outage,
    admit,
    expire,
    fires_at,
    injected_exception,
    outage_for,
)

logger = logging.getLogger(__name__)

# How often a held prompt looks for a release by DELETE /emulator/faults (an interrupt wakes it at once).
HOLD_POLL_S = 0.02
# How long the executor thread waits for sockets to close before it carries on anyway.
SETTLE_TIMEOUT_S = 10.0
FIRED_LOG_LIMIT = 1000


class FaultActions(Protocol):
    """What the injector asks of the emulator it breaks; the futures finish once the sockets are closed."""

    def restart(self) -> concurrent.futures.Future[int]: ...

    def drop_websockets(self, abrupt: bool) -> concurrent.futures.Future[int]: ...

    def wait_for_interrupt(self, timeout: float) -> bool: ...


@dataclass
class _Armed:
    fault_id: str
    spec: FaultSpec
    armed_at: float
    fired: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.fault_id, **self.spec.as_json(), "fired": self.fired, "armed_at": self.armed_at}


@dataclass(frozen=True)
class _Firing:
    """One fault firing, and the point of which prompt it fired at (all None for a fault fired now)."""

    fault_id: str
    spec: FaultSpec
    prompt_id: str | None = None
    node_id: str | None = None
    node_class: str | None = None
    step: int | None = None

    def where(self) -> str:
        if self.prompt_id is None:
            return "now"
        step = "" if self.step is None else f" step {self.step}"
        return f"prompt {self.prompt_id} at node {self.node_id} ({self.node_class}){step}"


class FaultInjector(ExecutionHooks):
    """Holds the armed faults and the outages in force; thread-safe (HTTP handlers and the executor thread).

    At each node start and progress step it fires the faults that match, in this order: outages, restarts
    and socket drops first, then a hang (which holds the prompt until ``POST /interrupt`` or until the
    faults are cleared), then an execution error (raised, so the node fails).
    """

    def __init__(
        self,
        actions: FaultActions,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self._actions = actions
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._armed: list[_Armed] = []
        self._outages: tuple[Outage, ...] = ()
        self._holding: dict[str, dict[str, Any]] = {}
        self._fired: deque[dict[str, Any]] = deque(maxlen=FIRED_LOG_LIMIT)
        self._releases = 0  # bumped by clear(): held prompts compare it with the value they started under
        self._fired_counts = dict.fromkeys(KINDS, 0)
        self._requests_refused = 0
        self._node = ("", "", "")  # (prompt id, node id, class) of the node the executor is running

    def arm(self, spec: FaultSpec) -> tuple[dict[str, Any], concurrent.futures.Future[int] | None]:
        """Arm ``spec`` and describe it; a fault for ``now`` fires at once, and its future (when it closes
        sockets) finishes once they are closed."""
        with self._lock:
            armed = _Armed(f"fault-{next(self._ids)}", spec, self._wall_clock())
            if spec.when == "in_prompt":
                self._armed.append(armed)
            else:
                armed.fired = 1
            described = armed.as_json()
        logger.warning("fault %s armed: %s", armed.fault_id, spec.as_json())
        if spec.when == "in_prompt":
            return described, None
        firing = _Firing(armed.fault_id, spec)
        self._record([firing])
        return described, self._act(firing)

    def disarm(self, fault_id: str) -> bool:
        """Disarm one fault and end the outages it started; False when no such fault is armed or in force."""
        with self._lock:
            kept = [armed for armed in self._armed if armed.fault_id != fault_id]
            outages = tuple(outage for outage in self._outages if outage.fault_id != fault_id)
            found = len(kept) < len(self._armed) or len(outages) < len(self._outages)
            self._armed, self._outages = kept, outages
        if found:
            logger.warning("fault %s disarmed", fault_id)
        return found

    def clear(self) -> int:
        """Disarm every fault, end every outage and release held prompts (they run on); returns how many
        faults were armed."""
        with self._lock:
            count = len(self._armed)
            self._armed, self._outages = [], ()
            self._releases += 1
        logger.warning("faults cleared: %d disarmed, outages ended, held prompts released", count)
        return count

    def before_node(self, prompt_id: str, node_id: str, class_type: str) -> None:
        # on_step is not told the class; steps always follow their node's before_node on the one executor
        # thread, so the class seen here is the stepping node's.
        self._node = (prompt_id, node_id, class_type)
        self._at_point(prompt_id, node_id, class_type, None)

    def on_step(self, prompt_id: str, node_id: str, value: int, total: int) -> None:
        known_prompt, known_node, class_type = self._node
        if (known_prompt, known_node) != (prompt_id, node_id):
            class_type = ""
        self._at_point(prompt_id, node_id, class_type, value)

    def refusal(self, path: str) -> Outage | None:
        """The outage that refuses a request for ``path`` now, if any (spending one of its requests)."""
        with self._lock:
            verdict = admit(self._outages, path, self._clock())
            self._outages = verdict.remaining
            if verdict.refused_by is not None:
                self._requests_refused += 1
        self._log_ended(verdict.ended)
        if verdict.refused_by is not None:
            logger.info("fault %s: refusing %s (%s)", verdict.refused_by.fault_id, path, verdict.refused_by.refuse_with)
        return verdict.refused_by

    def snapshot(self) -> dict[str, Any]:
        """``GET /emulator/faults``: armed faults, outages in force, prompts held, and the faults fired."""
        with self._lock:
            now = self._clock()
            self._outages, ended = expire(self._outages, now)
            snapshot = {
                "armed": [armed.as_json() for armed in self._armed],
                "outages": [
                    {
                        "fault_id": outage.fault_id,
                        "scope": outage.scope,
                        "refuse_with": outage.refuse_with,
                        "remaining_s": None if outage.until is None else round(outage.until - now, 3),
                        "requests_left": outage.requests_left,
                    }
                    for outage in self._outages
                ],
                "holding": list(self._holding.values()),
                "fired": list(self._fired),
            }
        self._log_ended(ended)
        return snapshot

    def counters(self) -> dict[str, Any]:
        """The fault counters ``GET /emulator/stats`` reports."""
        with self._lock:
            return {
                "faults_armed": len(self._armed),
                "faults_fired": dict(self._fired_counts),
                "requests_refused": self._requests_refused,
            }

    @staticmethod
    def _log_ended(outages: tuple[Outage, ...]) -> None:
        for outage in outages:
            logger.warning("fault %s: outage over, %s requests served again", outage.fault_id, outage.scope)

    def _at_point(self, prompt_id: str, node_id: str, class_type: str, step: int | None) -> None:
        firings = self._take(prompt_id, node_id, class_type, step)
        if not firings:
            return
        for firing in firings:
            if firing.spec.kind not in ("hang", "execution_error"):
                settled = self._act(firing)
                if settled is not None:
                    with contextlib.suppress(concurrent.futures.TimeoutError):
                        settled.result(SETTLE_TIMEOUT_S)
        for firing in firings:
            if firing.spec.kind == "hang":
                self._hold(firing)
        for firing in firings:
            if firing.spec.kind == "execution_error":
                spec = firing.spec
                raise injected_exception(spec.exception_type or "RuntimeError", spec.exception_message or "")

    def _take(self, prompt_id: str, node_id: str, class_type: str, step: int | None) -> list[_Firing]:
        """The armed faults that fire at this point, each with one of its ``times`` spent."""
        with self._lock:
            if not self._armed:
                return []
            firings = []
            for armed in list(self._armed):
                if not fires_at(armed.spec, prompt_id, node_id, class_type, step):
                    continue
                armed.fired += 1
                if armed.spec.times is not None and armed.fired >= armed.spec.times:
                    self._armed.remove(armed)
                firings.append(_Firing(armed.fault_id, armed.spec, prompt_id, node_id, class_type, step))
        self._record(firings)
        return firings

    def _record(self, firings: list[_Firing]) -> None:
        with self._lock:
            for firing in firings:
                self._fired_counts[firing.spec.kind] += 1
                self._fired.append(
                    {
                        "fault_id": firing.fault_id,
                        "kind": firing.spec.kind,
                        "prompt_id": firing.prompt_id,
                        "node_id": firing.node_id,
                        "node_class": firing.node_class,
                        "step": firing.step,
                        "at": self._wall_clock(),
                    }
                )
        for firing in firings:
            logger.warning("fault %s (%s) fired: %s", firing.fault_id, firing.spec.kind, firing.where())

    def _act(self, firing: _Firing) -> concurrent.futures.Future[int] | None:
        """Do what a restart, socket drop or outage does; the refusals start first, so that no client
        reconnects in between."""
        spec = firing.spec
        if spec.starts_outage:
            with self._lock:
                self._outages = (*self._outages, outage_for(spec, firing.fault_id, self._clock()))
        if spec.kind == "restart":
            return self._actions.restart()
        if spec.kind == "drop_websockets":
            return self._actions.drop_websockets(bool(spec.abrupt))
        return None

    def _hold(self, firing: _Firing) -> None:
        """Hold the prompt until it is interrupted (then end it as interrupted) or the faults are cleared."""
        with self._lock:
            releases = self._releases
            self._holding[firing.fault_id] = {
                "fault_id": firing.fault_id,
                "prompt_id": firing.prompt_id,
                "node_id": firing.node_id,
                "node_class": firing.node_class,
                "step": firing.step,
            }
        try:
            while not self._actions.wait_for_interrupt(HOLD_POLL_S):
                if self._releases != releases:
                    logger.warning("fault %s: released %s", firing.fault_id, firing.where())
                    return
        finally:
            with self._lock:
                self._holding.pop(firing.fault_id, None)
        logger.warning("fault %s: %s interrupted while held", firing.fault_id, firing.where())
        raise Interrupted()
