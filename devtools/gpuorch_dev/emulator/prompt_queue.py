"""The in-memory prompt queue and history, shared by the HTTP handlers and the executor thread.

Like ComfyUI's ``PromptQueue``: items are ordered by their ``number`` (so ``front`` submissions, which get a
negative number, jump ahead), the running item counts as remaining work, history keeps at most
``history_limit`` entries, and nothing survives a restart.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueueItem:
    """One accepted prompt; ``as_list()`` is the 5-element array ComfyUI shows in /queue and /history."""

    number: float
    prompt_id: str
    graph: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.graph, self.extra_data, self.outputs]


@dataclass
class HistoryEntry:
    outputs: dict[str, Any]
    meta: dict[str, Any]
    status_str: str
    completed: bool
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class PromptQueue:
    """Thread-safe pending heap, running set and bounded history. ``on_change`` runs after each change."""

    def __init__(self, history_limit: int, on_change: Callable[[], None] = lambda: None):
        self._history_limit = history_limit
        self._on_change = on_change
        self._lock = threading.Condition()
        self._pending: list[tuple[float, int, QueueItem]] = []
        self._order = itertools.count()
        self._running: dict[int, QueueItem] = {}
        self._history: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._closed = False

    def put(self, item: QueueItem) -> None:
        with self._lock:
            heapq.heappush(self._pending, (item.number, next(self._order), item))
            self._lock.notify()
        self._on_change()

    def get(self, timeout: float | None = None) -> tuple[int, QueueItem] | None:
        """Move the next item to running and return ``(task id, item)``; None on timeout or after close()."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._pending or self._closed, timeout) or self._closed:
                return None
            _, task_id, item = heapq.heappop(self._pending)
            self._running[task_id] = item
        self._on_change()
        return task_id, item

    def task_done(self, task_id: int, entry: HistoryEntry) -> bool:
        """Write the item's history entry and drop it from running (one step, as ComfyUI does).

        Returns False, writing nothing, for an item a simulated restart forgot while it ran.
        """
        with self._lock:
            item = self._running.pop(task_id, None)
            if item is None:
                return False
            while len(self._history) >= self._history_limit:
                self._history.popitem(last=False)
            self._history[item.prompt_id] = {
                "prompt": item.as_list(),
                "outputs": entry.outputs,
                "status": {
                    "status_str": entry.status_str,
                    "completed": entry.completed,
                    "messages": [[event, data] for event, data in entry.messages],
                },
                "meta": entry.meta,
            }
        self._on_change()
        return True

    def close(self) -> None:
        """Wake every waiting get() with None; used at shutdown."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def remaining(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._running)

    def is_running(self, task_id: int) -> bool:
        """Whether ``task_id`` is still the queue's running item (a restart forgets it)."""
        with self._lock:
            return task_id in self._running

    def running_ids(self) -> list[str]:
        with self._lock:
            return [item.prompt_id for item in self._running.values()]

    def snapshot(self) -> tuple[list[list[Any]], list[list[Any]]]:
        """(running, pending) as ComfyUI lists them, pending in execution order."""
        with self._lock:
            running = [item.as_list() for item in self._running.values()]
            pending = [item.as_list() for _, _, item in sorted(self._pending, key=lambda entry: entry[:2])]
        return copy.deepcopy(running), copy.deepcopy(pending)

    def delete_pending(self, prompt_ids: Iterable[str]) -> int:
        doomed = set(prompt_ids)
        with self._lock:
            kept = [entry for entry in self._pending if entry[2].prompt_id not in doomed]
            removed = len(self._pending) - len(kept)
            heapq.heapify(kept)
            self._pending = kept
        if removed:
            self._on_change()
        return removed

    def clear_pending(self) -> None:
        with self._lock:
            self._pending = []
        self._on_change()

    def history(self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """ComfyUI's get_history: one entry by id ({} when absent), or the last ``max_items`` from ``offset``."""
        with self._lock:
            if prompt_id is not None:
                entry = self._history.get(prompt_id)
                return {} if entry is None else {prompt_id: copy.deepcopy(entry)}
            if offset < 0 and max_items is not None:
                offset = len(self._history) - max_items
            selected = {}
            for index, (key, entry) in enumerate(self._history.items()):
                if index < offset:
                    continue
                selected[key] = copy.deepcopy(entry)
                if max_items is not None and len(selected) >= max_items:
                    break
            return selected

    def history_size(self) -> int:
        with self._lock:
            return len(self._history)

    def delete_history(self, prompt_ids: Iterable[str]) -> None:
        with self._lock:
            for prompt_id in prompt_ids:
                self._history.pop(prompt_id, None)

    def clear_history(self) -> None:
        with self._lock:
            self._history.clear()

    def forget_everything(self, include_running: bool = False) -> None:
        """Drop pending items and history, as a ComfyUI restart would.

        The running item is kept, and finishes into history, unless ``include_running``: then it is
        forgotten too, and its ``task_done`` writes nothing.
        """
        with self._lock:
            self._pending = []
            self._history.clear()
            if include_running:
                self._running.clear()
        self._on_change()
