"""The emulator's counters: prompts and nodes run, busy wall time, and what happened to each prompt id."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

OUTCOMES = ("succeeded", "failed", "interrupted", "abandoned")


class BusyMeter:
    """Counts prompts and nodes, how much wall time the executor spent running prompts, and per prompt id
    how often it was queued and executed and how each execution ended.

    An execution is ``abandoned`` when a simulated restart forgot the prompt while it ran: it writes no
    history and sends no more frames. Per-prompt records keep the newest ``prompt_limit`` ids.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, prompt_limit: int = 10_000):
        self._clock = clock
        self._prompt_limit = prompt_limit
        self._lock = threading.Lock()
        self._started = clock()
        self._busy_total = 0.0
        self._busy_since: float | None = None
        self._prompts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "prompts_executed",
                *(f"prompts_{outcome}" for outcome in OUTCOMES),
                "nodes_executed",
                "nodes_cached",
                "progress_steps",
            ),
            0,
        )

    def restart(self) -> None:
        """Start measuring from now: the executor calls this when its thread starts."""
        with self._lock:
            self._started = self._clock()
            self._busy_total = 0.0

    def queued(self, prompt_id: str) -> None:
        """POST /prompt accepted ``prompt_id``."""
        with self._lock:
            self._prompt(prompt_id)["queued"] += 1

    def begin(self, prompt_id: str) -> None:
        with self._lock:
            self._busy_since = self._clock()
            self._prompt(prompt_id)["executed"] += 1

    def end(self, prompt_id: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        with self._lock:
            if self._busy_since is not None:
                self._busy_total += self._clock() - self._busy_since
                self._busy_since = None
            self.counts["prompts_executed"] += 1
            self.counts[f"prompts_{outcome}"] += 1
            self._prompt(prompt_id)["outcomes"].append(outcome)

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[key] += amount

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            busy = self._busy_total + (now - self._busy_since if self._busy_since is not None else 0.0)
            uptime = now - self._started
            return {
                **self.counts,
                "uptime_s": round(uptime, 6),
                "busy_s": round(busy, 6),
                "busy_fraction": round(busy / uptime, 6) if uptime > 0 else 0.0,
                "running": self._busy_since is not None,
                "prompts": {
                    prompt_id: {**record, "outcomes": list(record["outcomes"])}
                    for prompt_id, record in self._prompts.items()
                },
            }

    def _prompt(self, prompt_id: str) -> dict[str, Any]:
        # Called with the lock held. A prompt id seen again moves to the newest end, so eviction drops the
        # ids nobody has touched for longest.
        record = self._prompts.pop(prompt_id, None) or {"queued": 0, "executed": 0, "outcomes": []}
        self._prompts[prompt_id] = record
        while len(self._prompts) > self._prompt_limit:
            self._prompts.popitem(last=False)
        return record
