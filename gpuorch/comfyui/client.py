"""Synchronous client for one ComfyUI server: upload inputs, submit a graph, follow it, fetch outputs."""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import websocket

from gpuorch.comfyui.errors import (
    ComfyError,
    ComfyExecutionError,
    ComfyInterrupted,
    ComfyPromptLost,
    ComfyProtocolError,
    ComfyRejected,
    ComfyTimeout,
    ComfyUnavailable,
)
from gpuorch.comfyui.progress import Progress, ProgressTracker

__all__ = [
    "ComfyClient",
    "Failure",
    "HistoryEntry",
    "OutputRef",
    "PollPolicy",
    "QueueState",
    "RunResult",
    "parse_history",
    "parse_queue",
]

logger = logging.getLogger(__name__)

Location = Literal["done", "running", "pending"]

# Failures of the connection itself (refused, reset, timed out, cut mid-body), not of the request.
_UNREACHABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True)
class OutputRef:
    """One file a prompt produced; ``media`` is the output key it was listed under (images, gifs...)."""

    node_id: str
    filename: str
    subfolder: str
    type: str
    media: str


@dataclass(frozen=True)
class Failure:
    """Why a finished prompt did not succeed, from the last message of its history status."""

    kind: Literal["error", "interrupted"]
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    traceback: tuple[str, ...] = ()

    def to_exception(self, prompt_id: str) -> ComfyError:
        if self.kind == "interrupted":
            return ComfyInterrupted(prompt_id, node_id=self.node_id, node_type=self.node_type)
        return ComfyExecutionError(
            prompt_id,
            node_id=self.node_id,
            node_type=self.node_type,
            exception_type=self.exception_type,
            exception_message=self.exception_message,
            traceback=self.traceback,
        )


@dataclass(frozen=True)
class HistoryEntry:
    """A finished prompt as ``/history/{id}`` reports it."""

    prompt_id: str
    status_str: str | None
    completed: bool
    outputs: tuple[OutputRef, ...]
    failure: Failure | None
    execution_s: float | None = None  # from execution_start to the last status message (GPU time)

    @property
    def succeeded(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    prompt_id: str
    outputs: tuple[OutputRef, ...]
    execution_s: float | None = None


@dataclass(frozen=True)
class PollPolicy:
    """How ``wait`` paces itself; every figure is in seconds."""

    poll_interval: float = 1.0  # /history polling while the websocket is down
    check_interval: float = 10.0  # /history check while the socket is up but may be silent for us
    reconnect_interval: float = 5.0  # between websocket (re)connection attempts
    connect_timeout: float = 10.0  # websocket handshake
    unavailable_grace: float = 60.0  # how long ComfyUI may be unreachable before wait gives up


def _failure_from_message(event: str, data: Mapping[str, Any]) -> Failure:
    trace = data.get("traceback")
    return Failure(
        kind="interrupted" if event == "execution_interrupted" else "error",
        node_id=None if data.get("node_id") is None else str(data["node_id"]),
        node_type=data.get("node_type"),
        exception_type=data.get("exception_type"),
        exception_message=data.get("exception_message"),
        traceback=tuple(trace) if isinstance(trace, list) else (),
    )


def _output_refs(outputs: Mapping[str, Any]) -> tuple[OutputRef, ...]:
    refs = []
    for node_id, by_media in outputs.items():
        if not isinstance(by_media, Mapping):
            continue
        for media, items in by_media.items():
            # Output keys also carry non-file values (``animated: [true]``, ``text: [...]``).
            for item in items if isinstance(items, list) else ():
                if isinstance(item, Mapping) and isinstance(item.get("filename"), str):
                    refs.append(OutputRef(str(node_id), item["filename"], str(item.get("subfolder") or ""),
                                          str(item.get("type") or "output"), str(media)))
    return tuple(refs)


def parse_history(prompt_id: str, body: Any) -> HistoryEntry | None:
    """Parse a ``/history/{id}`` answer; None when the prompt has no entry (queued, running or unknown)."""
    if not isinstance(body, Mapping):
        raise ComfyProtocolError(f"/history/{prompt_id} answered {type(body).__name__}, not an object")
    entry = body.get(prompt_id)
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise ComfyProtocolError(f"/history/{prompt_id} entry is not an object")
    status = entry.get("status") if isinstance(entry.get("status"), Mapping) else {}
    status_str = status.get("status_str")
    # Servers older than the ``status`` field only wrote history for finished runs.
    completed = bool(status.get("completed", not status))
    failure = None
    if status_str == "error" or (status and not completed):
        messages = [m for m in status.get("messages") or () if isinstance(m, list) and len(m) == 2]
        last = next((m for m in reversed(messages)
                     if m[0] in ("execution_error", "execution_interrupted")), None)
        failure = (_failure_from_message(last[0], last[1] if isinstance(last[1], Mapping) else {})
                   if last else Failure(kind="error", exception_message=f"status {status_str!r}"))
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), Mapping) else {}
    return HistoryEntry(prompt_id, status_str, completed, _output_refs(outputs), failure,
                        execution_seconds(status.get("messages") or ()))


def execution_seconds(messages: Any) -> float | None:
    """Seconds from `execution_start` to the last status message, from their millisecond timestamps."""
    stamps = [(m[0], m[1].get("timestamp")) for m in messages
              if isinstance(m, list) and len(m) == 2 and isinstance(m[1], Mapping)]
    start = next((t for event, t in stamps if event == "execution_start" and isinstance(t, (int, float))), None)
    end = next((t for _, t in reversed(stamps) if isinstance(t, (int, float))), None)
    if start is None or end is None or end < start:
        return None
    return (end - start) / 1000.0


def parse_queue(body: Any) -> QueueState:
    """Parse ``GET /queue``: each item is ``[number, prompt_id, graph, extra_data, outputs]``."""
    if not isinstance(body, Mapping):
        raise ComfyProtocolError("/queue answered something other than an object")

    def ids(key: str) -> tuple[str, ...]:
        return tuple(str(item[1]) for item in body.get(key) or ()
                     if isinstance(item, list) and len(item) > 1)

    return QueueState(running=ids("queue_running"), pending=ids("queue_pending"))


class ComfyClient:
    """One ComfyUI server, seen from one worker (``client_id`` routes its websocket events).

    A job runs as: ``locate`` (a redelivered job finds its own prompt), ``upload_image`` for each
    input, ``submit`` with the job id as ``prompt_id``, ``wait``, then ``view`` for each output.
    The server's behaviour is described in ``docs/comfyui-contract.md``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        poll: PollPolicy = PollPolicy(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.timeout = timeout
        self.poll = poll
        self._session = session if session is not None else requests.Session()
        self._owns_session = session is None
        self._clock = clock
        self._sleep = sleep

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- HTTP plumbing -------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except _UNREACHABLE as exc:
            raise ComfyUnavailable(f"{method} {url}: {exc}") from exc
        if response.status_code >= 500:
            raise ComfyUnavailable(f"{method} {url} answered {response.status_code}: {response.text[:200]}")
        return response

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ComfyProtocolError(
                f"{response.request.method} {response.url} answered {response.status_code} "
                f"with a body that is not JSON: {response.text[:200]!r}"
            ) from exc

    def _get_json(self, path: str, **kwargs: Any) -> Any:
        response = self._request("GET", path, **kwargs)
        if response.status_code != 200:
            raise ComfyRejected(f"GET {path} answered {response.status_code}", status_code=response.status_code)
        return self._json(response)

    def _post_ok(self, path: str, body: Mapping[str, Any]) -> None:
        response = self._request("POST", path, json=body)
        if response.status_code != 200:
            raise ComfyRejected(f"POST {path} answered {response.status_code}", status_code=response.status_code)

    # ---- endpoints -----------------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        """The readiness and GPU-memory probe: ``{"system": {...}, "devices": [...]}``."""
        return self._get_json("/system_stats")

    def object_info(self) -> dict[str, Any]:
        """The server's node catalogue, keyed by class_type."""
        return self._get_json("/object_info")

    def upload_image(self, name: str, data: bytes, *, overwrite: bool = False) -> str:
        """Store an input image; answers the name to use in the graph (the server may rename it)."""
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = self._request(
            "POST", "/upload/image",
            files={"image": (name, data, content_type)},
            data={"overwrite": "true" if overwrite else "false", "type": "input"},
        )
        if response.status_code != 200:
            raise ComfyRejected(f"upload of {name!r} answered {response.status_code}",
                                status_code=response.status_code)
        body = self._json(response)
        if not isinstance(body, Mapping) or not isinstance(body.get("name"), str):
            raise ComfyProtocolError(f"upload of {name!r} answered without a name: {body!r}")
        subfolder = body.get("subfolder") or ""
        stored = f"{subfolder}/{body['name']}" if subfolder else body["name"]
        if stored != name:
            logger.info("ComfyUI stored upload %r as %r", name, stored)
        return stored

    def submit(self, graph: Mapping[str, Any], *, prompt_id: str) -> int:
        """Queue ``graph`` under ``prompt_id``; answers its queue number."""
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        response = self._request("POST", "/prompt", json=body)
        if response.status_code != 200:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            raise ComfyRejected.from_answer(answer, status_code=response.status_code)
        answer = self._json(response)
        if not isinstance(answer, Mapping) or not isinstance(answer.get("number"), int):
            raise ComfyProtocolError(f"POST /prompt answered without a queue number: {answer!r}")
        if answer.get("node_errors"):
            # ComfyUI queues the outputs that validated and drops the others.
            logger.warning("prompt %s queued with some outputs rejected: %s",
                           prompt_id, ComfyRejected.from_answer(answer, status_code=200))
        logger.info("prompt %s submitted as number %d", prompt_id, answer["number"])
        return answer["number"]

    def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt, or None while it is queued or running (or unknown: see ``locate``)."""
        return parse_history(prompt_id, self._get_json(f"/history/{quote(prompt_id, safe='')}"))

    def queue(self) -> QueueState:
        return parse_queue(self._get_json("/queue"))

    def locate(self, prompt_id: str) -> Location | None:
        """Where ComfyUI has the prompt: finished, running, waiting, or nowhere (None)."""
        return self._probe(prompt_id)[0]

    def _probe(self, prompt_id: str) -> tuple[Location | None, HistoryEntry | None]:
        # The queue is read before the history: a prompt leaves the queue only once its history
        # is written, so a prompt missing from both is really unknown, never "just finished".
        state = self.queue()
        if prompt_id in state.running:
            return "running", None
        if prompt_id in state.pending:
            return "pending", None
        entry = self.history(prompt_id)
        return ("done", entry) if entry is not None else (None, None)

    def view(self, output: OutputRef) -> bytes:
        """Download one output file."""
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        response = self._request("GET", "/view", params=params)
        if response.status_code != 200:
            raise ComfyRejected(f"output {output.filename!r} ({output.type}) answered {response.status_code}",
                                status_code=response.status_code)
        return response.content

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt; with ``prompt_id``, only if that prompt is the one running."""
        self._post_ok("/interrupt", {} if prompt_id is None else {"prompt_id": prompt_id})

    def delete_pending(self, prompt_ids: Iterable[str]) -> None:
        """Drop prompts that have not started yet (they will never reach ``/history``)."""
        self._post_ok("/queue", {"delete": list(prompt_ids)})

    # ---- following a run -------------------------------------------------------------------

    def _ws_url(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path + "/ws", f"clientId={quote(self.client_id)}", ""))

    def wait(
        self,
        prompt_id: str,
        *,
        timeout: float,
        graph: Mapping[str, Any] | None = None,
        tracker: ProgressTracker | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_check: Callable[[], None] | None = None,
    ) -> RunResult:
        """Block until the prompt finishes; answer its outputs or raise why it did not.

        ``graph`` (the submitted one), or a ``tracker`` built from it with other weights, lets
        ``on_progress`` receive percentages; without either only the final 100 is reported.
        ``on_check`` runs before each look at the queue and history (every ``check_interval`` while
        the socket is up): the caller's chance to stop waiting, by raising (cancellation, say).
        Raises ComfyExecutionError, ComfyInterrupted, ComfyTimeout, ComfyPromptLost, or
        ComfyUnavailable once the server stayed unreachable for longer than the grace.
        """
        if graph is not None and tracker is not None:
            raise ValueError("pass the graph or a tracker built from it, not both")
        if tracker is None and graph is not None:
            tracker = ProgressTracker(graph)
        return _Follower(self, prompt_id, timeout, tracker, on_progress, on_check).run()


class _Follower:
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
            raise _failure_from_message(event, data).to_exception(self.prompt_id)
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
