"""What a caller may hear of its job: the events, a job's webhook subscription, and the body a webhook carries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpuorch.clock import timestamp
from gpuorch.errors import ParamsInvalid
from gpuorch.inputs import HttpUri, InputPolicy, InputRejected, parse_input_uri
from gpuorch.jobs import states
from gpuorch.workflows.folders import REQUEST_FIELDS

JOB_RUNNING = "job.running"
JOB_SUCCEEDED = "job.succeeded"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
# Opt-in: one per percentage the job's record reaches, tried once (a late progress report says nothing).
JOB_PROGRESS = "job.progress"

STATUS_EVENTS: dict[str, str] = {
    states.RUNNING: JOB_RUNNING,
    states.SUCCEEDED: JOB_SUCCEEDED,
    states.FAILED: JOB_FAILED,
    states.CANCELLED: JOB_CANCELLED,
}
EVENTS: tuple[str, ...] = (*STATUS_EVENTS.values(), JOB_PROGRESS)
# What a webhook named without its events hears: every status change, no progress.
DEFAULT_EVENTS: tuple[str, ...] = tuple(STATUS_EVENTS.values())

# The request fields that name a webhook, beside a workflow's parameters (no workflow may have a parameter of
# these names: gpuorch.workflows refuses one).
RESERVED_FIELDS = REQUEST_FIELDS
WEBHOOK_FIELD, EVENTS_FIELD = REQUEST_FIELDS


@dataclass(frozen=True)
class Subscription:
    """Where a job's events go, which of them, and the API key whose webhook secret signs them."""

    url: str
    events: tuple[str, ...]
    key_id: str

    def wants(self, event: str) -> bool:
        return event in self.events

    def as_record(self) -> dict[str, Any]:
        return {"url": self.url, "events": list(self.events), "key_id": self.key_id}

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> "Subscription | None":
        if not record:
            return None
        return cls(record["url"], tuple(record.get("events") or DEFAULT_EVENTS), record.get("key_id", ""))


def event_of(status: str) -> str | None:
    """The event a record moving to `status` announces (None for queued, which is announced by the answer)."""
    return STATUS_EVENTS.get(status)


def webhook_uri(url: str, *, allow_insecure: bool) -> HttpUri:
    """The webhook URL checked as inputs are (public https://; http:// and loopback only with allow_insecure);
    InputRejected saying why not. Every address its name resolves to is checked again at each attempt."""
    uri = parse_input_uri(url, InputPolicy(allow_insecure_local=allow_insecure))
    if not isinstance(uri, HttpUri):
        raise InputRejected("a webhook must be an https:// URL")
    return uri


def subscription(url: Any, events: Any, key_id: str, *, allow_insecure: bool) -> Subscription:
    """A subscription from a request's fields; ParamsInvalid naming `webhook` or `webhook_events` otherwise."""
    errors: dict[str, list[str]] = {}
    if not isinstance(url, str):
        errors[WEBHOOK_FIELD] = ["must be an https:// URL"]
    else:
        try:
            webhook_uri(url, allow_insecure=allow_insecure)
        except InputRejected as exc:
            errors[WEBHOOK_FIELD] = [exc.reason]
    chosen: tuple[str, ...] = DEFAULT_EVENTS
    if events is not None:
        if not isinstance(events, (list, tuple)) or not events or not all(isinstance(e, str) for e in events):
            errors[EVENTS_FIELD] = [f"a non-empty list of events: {', '.join(EVENTS)}"]
        else:
            unknown = sorted(set(events) - set(EVENTS))
            if unknown:
                errors[EVENTS_FIELD] = [f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}"]
            chosen = tuple(e for e in EVENTS if e in events)
    if not key_id and not errors:
        errors[WEBHOOK_FIELD] = ["no API key's webhook secret can sign it (a Python caller needs "
                                 "GPUORCH_SUBMIT_KEY_ID)"]
    if errors:
        raise ParamsInvalid(errors)
    return Subscription(url, chosen, key_id)


def split_request(fields: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """(the workflow's parameters, the webhook URL or None, its events or None) of a request's fields."""
    params = {name: value for name, value in fields.items() if name not in RESERVED_FIELDS}
    return params, fields.get(WEBHOOK_FIELD), fields.get(EVENTS_FIELD)


def topic(event: str, progress: int | None = None) -> str:
    """What one delivery is of: the event, and for progress its percentage (`job.progress#042`)."""
    return event if progress is None else f"{event}#{progress:03d}"


def message_id(job_id: str, event_topic: str) -> str:
    """The webhook-id of a job's event: the same on every attempt and resend, so a receiver can drop repeats."""
    return f"msg_{job_id}_{event_topic.replace('#', '_')}"


def body(event: str, data: Mapping[str, Any], at: datetime) -> bytes:
    """The JSON body of a webhook, as Standard Webhooks shapes it: type, timestamp, data (the job record)."""
    return json.dumps({"type": event, "timestamp": timestamp(at), "data": data}, separators=(",", ":"),
                      sort_keys=True).encode()


def events_text(events: Iterable[str]) -> str:
    return ", ".join(events)
