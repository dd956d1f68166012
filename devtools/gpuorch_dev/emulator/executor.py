"""The executor thread: takes one prompt at a time off the queue and runs it, as ComfyUI's prompt worker does.

Frame order, history contents and caching follow ``docs/comfyui-contract.md`` and the recorded traces.
Fault injection plugs in through :class:`ExecutionHooks` (called before each prompt, node and step), plus
``PromptQueue.forget_everything`` and ``WebSocketHub.close_all`` for a lost queue or dropped sockets. A
prompt the queue forgets while it runs (a simulated restart) is abandoned: once the queue no longer lists
it, it sends no frame and writes no history, and the interrupt flag stops it at the next boundary.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gpuorch_dev.emulator.graph import CachedNode, OutputCache, execution_plan, format_input
from gpuorch_dev.emulator.hub import WebSocketHub
from gpuorch_dev.emulator.meter import BusyMeter
from gpuorch_dev.emulator.nodes import node_function
from gpuorch_dev.emulator.prompt_queue import HistoryEntry, PromptQueue, QueueItem
from gpuorch_dev.emulator.storage import Storage
from gpuorch.comfyui.validation import coerce_widget_value, declared_inputs

logger = logging.getLogger(__name__)


class Interrupted(Exception):
    """POST /interrupt reached the running prompt at a node boundary or a progress step."""


class ExecutionHooks:
    """Extension points around execution; the defaults do nothing.

    A subclass can inject faults: raise from ``before_node`` to fail that node (reported as
    ``execution_error``), block in it to hang the executor, or count steps in ``on_step``.
    """

    def before_prompt(self, item: QueueItem) -> None:
        """Called when ``item`` leaves the queue, before ``execution_start``."""

    def before_node(self, prompt_id: str, node_id: str, class_type: str) -> None:
        """Called after the ``executing`` frame of a node, before its inputs are gathered."""

    def on_step(self, prompt_id: str, node_id: str, value: int, total: int) -> None:
        """Called at each progress step, before its frames are sent."""


class ChainedHooks(ExecutionHooks):
    """Several hooks in turn, in the order given; one that raises stops the rest."""

    def __init__(self, *hooks: ExecutionHooks):
        self.hooks = hooks

    def before_prompt(self, item: QueueItem) -> None:
        for hooks in self.hooks:
            hooks.before_prompt(item)

    def before_node(self, prompt_id: str, node_id: str, class_type: str) -> None:
        for hooks in self.hooks:
            hooks.before_node(prompt_id, node_id, class_type)

    def on_step(self, prompt_id: str, node_id: str, value: int, total: int) -> None:
        for hooks in self.hooks:
            hooks.on_step(prompt_id, node_id, value, total)


class Executor:
    """Owns the executor thread, the output cache and the interrupt flag."""

    def __init__(
        self,
        queue: PromptQueue,
        hub: WebSocketHub,
        storage: Storage,
        catalogue: Callable[[], Mapping[str, Any]],
        step_seconds: float,
        hooks: ExecutionHooks | None = None,
        meter: BusyMeter | None = None,
    ):
        self.queue = queue
        self.hub = hub
        self.storage = storage
        self.catalogue = catalogue
        self.step_seconds = step_seconds
        self.hooks = hooks or ExecutionHooks()
        self.meter = meter or BusyMeter()
        self.cache = OutputCache()
        self.interrupt_flag = threading.Event()
        self._free_memory = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: PromptRun | None = None

    def start(self) -> None:
        self.meter.restart()
        self._thread = threading.Thread(target=self._work, name="comfyui-emulator-executor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.close()
        self.interrupt_flag.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("executor thread still busy after %.1fs; leaving it behind", timeout)

    def interrupt(self) -> None:
        self.interrupt_flag.set()

    def wait_for_interrupt(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for an interrupt (or shutdown); True once one came."""
        return self.interrupt_flag.wait(timeout)

    def current_node(self, client_id: str) -> str | None:
        """The node now executing for ``client_id``'s prompt: a client reconnecting mid-run is told it."""
        run = self._current
        if run is None or run.item.client_id != client_id or not run.node_id or not run.live():
            return None
        return run.node_id

    def free_memory(self) -> None:
        """Drop the output cache before the next prompt (POST /free {"free_memory": true})."""
        self._free_memory.set()

    def _work(self) -> None:
        while True:
            taken = self.queue.get()
            if taken is None:
                return
            task_id, item = taken
            try:
                self.run(task_id, item)
            except Exception:
                # The worker thread must outlive a bug in any one prompt, or the queue would stall for good.
                logger.exception("prompt %s: emulator failure outside node execution", item.prompt_id)

    def run(self, task_id: int, item: QueueItem) -> None:
        """Execute one prompt, write its history, then send the final ``executing`` frame."""
        self.interrupt_flag.clear()  # a stale interrupt must not hit the next prompt, as in ComfyUI
        # Checked after clearing the flag: a restart between the two still interrupts this prompt.
        if not self.queue.is_running(task_id):
            logger.info("prompt %s: forgotten by a restart before it started", item.prompt_id)
            return
        if self._free_memory.is_set():
            self._free_memory.clear()
            self.cache.clear()
        self.meter.begin(item.prompt_id)
        logger.info("prompt %s: executing (number %s)", item.prompt_id, item.number)
        run = PromptRun(self, task_id, item)
        self._current = run
        try:
            outcome = run.execute()
        except Exception as exc:  # noqa: BLE001 - a hook or a cyclic graph fails the prompt, not the worker
            logger.warning("prompt %s: failed outside any node: %r", item.prompt_id, exc)
            outcome = run.fail_outside_nodes(exc)
        finally:
            self._current = None
        if not self.queue.task_done(task_id, run.history_entry(outcome)):
            self.meter.end(item.prompt_id, "abandoned")
            logger.info("prompt %s: abandoned (%s); a restart forgot it", item.prompt_id, outcome)
            return
        self.meter.end(item.prompt_id, outcome)
        if item.client_id is not None:
            self.hub.send("executing", {"node": None, "prompt_id": item.prompt_id}, item.client_id)
        logger.info("prompt %s: %s", item.prompt_id, outcome)


class PromptRun:
    """The state of one prompt's execution: its messages, progress state, values and outputs."""

    def __init__(self, executor: Executor, task_id: int, item: QueueItem):
        self.executor = executor
        self.task_id = task_id
        self.item = item
        self.prompt_id = item.prompt_id
        self.graph = item.graph
        self.extra_data = item.extra_data
        self.storage = executor.storage
        self.catalogue = executor.catalogue()
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.progress_nodes: dict[str, dict[str, Any]] = {}
        self.values: dict[str, tuple[Any, ...]] = {}
        self.outputs: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self.executed: list[str] = []
        self.node_id = ""

    def execute(self) -> str:
        """Run the prompt; return ``succeeded``, ``failed`` or ``interrupted``."""
        self.executor.hooks.before_prompt(self.item)
        self._message("execution_start", {"prompt_id": self.prompt_id})
        plan = execution_plan(self.graph, self.item.outputs, self.storage, self.executor.cache)
        self._message("execution_cached", {"nodes": plan.cached, "prompt_id": self.prompt_id})
        self.executor.meter.add("nodes_cached", len(plan.cached))
        for node_id in plan.cached:
            cached = self.executor.cache.get(plan.signatures[node_id])
            self.values[node_id] = cached.values
            if cached.ui is not None:
                self._record_ui(node_id, cached.ui)
                self._progress_state(node_id, 1, 1, "finished")
        for node_id in plan.order:
            try:
                self._run_node(node_id, plan.signatures[node_id])
            except Interrupted:
                self._message("execution_interrupted", self._failure(node_id), broadcast=True)
                return "interrupted"
            except Exception as exc:  # noqa: BLE001 - any node failure becomes an execution_error
                logger.info("prompt %s: node %s failed: %r", self.prompt_id, node_id, exc)
                error = {
                    **self._failure(node_id),
                    "exception_message": f"{exc}\n",
                    "exception_type": _full_type_name(type(exc)),
                    "traceback": traceback.format_tb(exc.__traceback__),
                    "current_inputs": self._current_inputs(node_id),
                    "current_outputs": plan.all_nodes,
                }
                self._message("execution_error", error)
                return "failed"
        self._message("execution_success", {"prompt_id": self.prompt_id})
        return "succeeded"

    def fail_outside_nodes(self, exc: Exception) -> str:
        """Record an ``execution_error`` for a failure no node can be blamed for."""
        self._message(
            "execution_error",
            {
                "prompt_id": self.prompt_id,
                "node_id": None,
                "node_type": None,
                "executed": list(self.executed),
                "exception_message": f"{exc}\n",
                "exception_type": _full_type_name(type(exc)),
                "traceback": traceback.format_tb(exc.__traceback__),
                "current_inputs": {},
                "current_outputs": [],
            },
        )
        return "failed"

    def live(self) -> bool:
        """Whether the queue still lists this run; a restart forgets it, and it then goes silent."""
        return self.executor.queue.is_running(self.task_id)

    def history_entry(self, outcome: str) -> HistoryEntry:
        if outcome == "succeeded":
            return HistoryEntry(self.outputs, self.meta, "success", True, self.messages)
        # ComfyUI keeps neither outputs nor meta of a failed or interrupted prompt.
        return HistoryEntry({}, {}, "error", False, self.messages)

    def progress(self, total: int) -> Iterator[int]:
        """The NodeContext progress bar: one simulated step per value, interruptible at every tick."""
        hooks, meter = self.executor.hooks, self.executor.meter
        for value in range(1, total + 1):
            if self.executor.interrupt_flag.wait(self.executor.step_seconds):
                raise Interrupted()
            hooks.on_step(self.prompt_id, self.node_id, value, total)
            meter.add("progress_steps")
            self._progress_state(self.node_id, value, total, "running")
            self._emit(
                "progress",
                {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id},
                broadcast=True,
            )
            yield value

    def _run_node(self, node_id: str, signature: str) -> None:
        self.node_id = node_id
        class_type = self.graph[node_id]["class_type"]
        self._progress_state(node_id, 0.0, 1.0, "running")
        self._emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id})
        if self.executor.interrupt_flag.is_set():
            raise Interrupted()
        self.executor.hooks.before_node(self.prompt_id, node_id, class_type)
        function = node_function(class_type)
        result = function(self, **self._inputs(node_id))
        self.values[node_id] = result.values
        self.executor.cache.put(signature, CachedNode(result.values, result.ui))
        self.executed.append(node_id)
        self.executor.meter.add("nodes_executed")
        if result.ui is not None:
            self._record_ui(node_id, result.ui)
        state = self.progress_nodes[node_id]
        value, total = (state["value"], state["max"]) if state["max"] != 1.0 else (1.0, 1.0)
        self._progress_state(node_id, value, total, "finished")

    def _inputs(self, node_id: str) -> dict[str, Any]:
        given = self.graph[node_id].get("inputs", {})
        resolved: dict[str, Any] = {}
        for name, _, input_type, _ in declared_inputs(self.catalogue[self.graph[node_id]["class_type"]]):
            if name not in given:
                continue
            value = given[name]
            if isinstance(value, list) and len(value) == 2:
                source, slot = value
                resolved[name] = self.values[str(source)][slot]
            else:
                resolved[name] = coerce_widget_value(value, input_type)
        return resolved

    def _current_inputs(self, node_id: str) -> dict[str, list[Any]]:
        try:
            return {name: [format_input(value)] for name, value in self._inputs(node_id).items()}
        except Exception:  # noqa: BLE001 - the inputs themselves may be what failed
            return {}

    def _record_ui(self, node_id: str, ui: dict[str, Any]) -> None:
        self.outputs[node_id] = ui
        self.meta[node_id] = {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
        self._emit("executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.prompt_id})

    def _failure(self, node_id: str) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self.graph[node_id]["class_type"],
            "executed": list(self.executed),
        }

    def _progress_state(self, node_id: str, value: float, total: float, state: str) -> None:
        self.progress_nodes[node_id] = {
            "value": value,
            "max": total,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        nodes = {key: dict(entry) for key, entry in self.progress_nodes.items()}
        self._emit("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes}, broadcast=True)

    def _message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        """ComfyUI's add_message: recorded in history, and sent like any execution frame."""
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append((event, data))
        self._emit(event, data, broadcast)

    def _emit(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        # Frames go to the prompt's client only; without a client_id, ComfyUI still broadcasts the few
        # events it sends with broadcast=True (progress, progress_state, execution_interrupted).
        if not self.live():
            return
        client_id = self.item.client_id
        if client_id is not None:
            self.executor.hub.send(event, data, client_id)
        elif broadcast:
            self.executor.hub.send(event, data, None)


def _full_type_name(klass: type) -> str:
    module = klass.__module__
    return klass.__qualname__ if module == "builtins" else f"{module}.{klass.__qualname__}"
