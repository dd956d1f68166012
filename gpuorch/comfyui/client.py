"""Synchronous client for one ComfyUI server: upload inputs, submit a graph, follow it, fetch outputs."""

from __future__ import annotations

import logging
import mimetypes
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from gpuorch.comfyui.errors import ComfyProtocolError, ComfyRejected, ComfyUnavailable
from gpuorch.comfyui.follow import Follower, PollPolicy
from gpuorch.comfyui.progress import Progress, ProgressTracker
from gpuorch.comfyui.shapes import (
    Failure,
    HistoryEntry,
    Location,
    OutputRef,
    QueueState,
    RunResult,
    execution_seconds,
    parse_history,
    parse_queue,
)

__all__ = [
    "ComfyClient",
    "Failure",
    "execution_seconds",
    "HistoryEntry",
    "OutputRef",
    "PollPolicy",
    "QueueState",
    "RunResult",
    "parse_history",
    "parse_queue",
]

logger = logging.getLogger(__name__)

# Failures of the connection itself (refused, reset, timed out, cut mid-body), not of the request.
_UNREACHABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


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
        return Follower(self, prompt_id, timeout, tracker, on_progress, on_check).run()
