"""Following one prompt to its end: the websocket for progress, /history checks for the truth."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import websocket

from gpuorch.comfyui.errors import ComfyPromptLost, ComfyTimeout, ComfyUnavailable
from gpuorch.comfyui.progress import Progress, ProgressTracker
from gpuorch.comfyui.shapes import HistoryEntry, RunResult, failure_from_message

if TYPE_CHECKING:
    from gpuorch.comfyui.client import ComfyClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollPolicy:
    """How ``wait`` paces itself; every figure is in seconds."""

    poll_interval: float = 1.0  # /history polling while the websocket is down
    check_interval: float = 10.0  # /history check while the socket is up but may be silent for us
    reconnect_interval: float = 5.0  # between websocket (re)connection attempts
    connect_timeout: float = 10.0  # websocket handshake
    unavailable_grace: float = 60.0  # how long ComfyUI may be unreachable before wait gives up


class Follower:
    """The state of one ``wait``: a websocket when one can be had, ``/history`` checks always.

    The socket gives progress and the prompt's end; the checks (queue, then history) catch what
    the socket cannot: frames sent before it connected, a prompt posted by an earlier worker with
    another client_id, a drop. While the socket is down the checks run every ``poll_interval``.
    """

    def __init__(self, client: ComfyClient, prompt_id: str, timeout: float,
                 tracker: ProgressTracker | None, on_progress: Callable[[Progress], None] | None,
                 on_check: Callable[[], None] | None = None) -> None:
        self.client = client
        self.clock = client._clock
        self.poll = client.poll
        self.prompt_id = prompt_id
        self.timeout = timeout
        self.tracker = tracker
        self.on_progress = on_progress
        self.on_check = on_check
        now = self.clock()
        self.deadline = now + timeout
        self.last_contact = self.next_check = self.next_connect = now
        self.ws: websocket.WebSocket | None = None
        self.ws_failures = 0

    def run(self) -> RunResult:
        try:
            while True:
                now = self.clock()
                if now >= self.deadline:
                    raise ComfyTimeout(self.prompt_id, self.timeout)
                if self.ws is None and now >= self.next_connect:
                    self._connect()
                if self.clock() >= self.next_check:
                    entry = self._check()
                    if entry is not None:
                        return self._finish(entry)
                if self.ws is not None:
                    self._read_frame()
                else:
                    wake = min(self.next_check, self.next_connect, self.deadline)
                    self.client._sleep(max(0.0, wake - self.clock()))
        finally:
            self._disconnect()

    def _connect(self) -> None:
        self.next_connect = self.clock() + self.poll.reconnect_interval
        timeout = max(0.001, min(self.poll.connect_timeout, self.deadline - self.clock()))
        try:
            self.ws = websocket.create_connection(self.client._ws_url(), timeout=timeout)
        except (OSError, websocket.WebSocketException) as exc:
            self.ws_failures += 1
            # Said once per wait; a socket that stays down would otherwise log every few seconds.
            logger.log(logging.WARNING if self.ws_failures == 1 else logging.DEBUG,
                       "prompt %s: no websocket (%s); polling /history", self.prompt_id, exc)
            return
        logger.debug("prompt %s: websocket connected", self.prompt_id)
        self.next_check = self.clock()  # frames sent before (re)connecting are lost: look now

    def _disconnect(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close(timeout=0)
            except (OSError, websocket.WebSocketException):
                pass
            self.ws = None

    def _check(self) -> HistoryEntry | None:
        if self.on_check is not None:
            self.on_check()  # may raise: the caller stops waiting
        now = self.clock()
        self.next_check = now + (self.poll.check_interval if self.ws is not None else self.poll.poll_interval)
        try:
            location, entry = self.client._probe(self.prompt_id)
        except ComfyUnavailable as exc:
            if now - self.last_contact > self.poll.unavailable_grace:
                raise
            logger.warning("prompt %s: ComfyUI unreachable (%s); still waiting", self.prompt_id, exc)
            return None
        self.last_contact = now
        if location is None:
            raise ComfyPromptLost(self.prompt_id)
        return entry

    def _read_frame(self) -> None:
        assert self.ws is not None
        try:
            self.ws.settimeout(max(0.001, min(self.next_check, self.deadline) - self.clock()))
            opcode, payload = self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return
        except (OSError, websocket.WebSocketException) as exc:
            opcode, payload = websocket.ABNF.OPCODE_CLOSE, str(exc)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            logger.warning("prompt %s: websocket lost (%s)", self.prompt_id, payload or "closed")
            self._disconnect()
            self.next_check = self.clock()  # the run may have ended while the socket was dying
            return
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return  # binary frames carry previews: nothing to learn from them
        try:
            message = json.loads(payload)
        except ValueError:
            logger.warning("prompt %s: ignoring a websocket frame that is not JSON", self.prompt_id)
            return
        if isinstance(message, Mapping):
            self._handle(message.get("type"), message.get("data"))

    def _handle(self, event: Any, data: Any) -> None:
        data = data if isinstance(data, Mapping) else {}
        owner = data.get("prompt_id")
        # Frames without a prompt_id (resent after a reconnect) are for this socket's prompt.
        if owner is not None and owner != self.prompt_id:
            return
        self._report(self.tracker.feed(event, data) if self.tracker else None)
        if event in ("execution_error", "execution_interrupted"):
            raise failure_from_message(event, data).to_exception(self.prompt_id)
        if event == "executing" and data.get("node") is None and owner == self.prompt_id:
            self.next_check = self.clock()  # the safe end signal: the history is written

    def _finish(self, entry: HistoryEntry) -> RunResult:
        if entry.failure is not None:
            raise entry.failure.to_exception(self.prompt_id)
        self._report(self.tracker.complete() if self.tracker else Progress(percent=100))
        logger.info("prompt %s finished with %d output(s)", self.prompt_id, len(entry.outputs))
        return RunResult(self.prompt_id, entry.outputs, entry.execution_s)

    def _report(self, progress: Progress | None) -> None:
        if progress is None or self.on_progress is None:
            return
        # Not guarded here: the caller's own errors are its to handle, and an exception raised into the
        # waiting thread (a task's soft time limit, say) must reach the caller, not be swallowed.
        self.on_progress(progress)
