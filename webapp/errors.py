"""The one JSON error shape of the API, and the one table that answers each error by its branch of the tree."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, request
from flask_smorest import Api, Blueprint
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

from gpuorch.access.backlog import BacklogFull
from gpuorch.access.ratelimit import RateLimited, retry_after_header
from gpuorch.access.spend import SpendCapReached
from gpuorch.errors import (
    AdmissionRefused, Conflict, InputTooLarge, ParamsInvalid, RequestRefused, Unavailable, UnknownWorkflow,
)
from gpuorch.jobs.idempotency import HEADER as IDEMPOTENCY_HEADER
from gpuorch.jobs.idempotency import IdempotencyKeyInUse, IdempotencyKeyReused
from gpuorch.jobs.store import TransitionRefused
from gpuorch.jobs.watch import TooManyWaiters
from lifecycle.facade import CapacityError, Ec2Unavailable, UnknownInstance

log = logging.getLogger(__name__)


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(
        required=True, metadata={"description": "Machine-readable code, e.g. invalid_params, job_not_found."}
    )
    message = ma.fields.String(required=True, metadata={"description": "What went wrong, for a human."})
    fields = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={
            "description": "Each offending field (dotted path for nested ones, _schema for the body as a "
            "whole) and the reasons it was refused. Present only when a field is to blame."
        },
    )


class ErrorSchema(ma.Schema):
    """Every error response of the API, whatever its status."""

    error = ma.fields.Nested(ErrorDetailSchema, required=True)


def error_responses(blp: Blueprint, *statuses: int) -> Callable[[Callable], Callable]:
    """Documents that an operation may answer each of `statuses` (in that order) with the one error shape."""

    def document(view: Callable) -> Callable:
        for status in reversed(statuses):
            view = blp.alt_response(status, response=HTTPStatus(status).name)(view)
        return view

    return document


class ApiError(RequestRefused):
    """A refusal the API words where it raises it (no key, a body that is not JSON, ...): its status, code,
    message, offending fields and headers."""

    def __init__(self, status: int, code: str, message: str, fields: Mapping[str, list[str]] | None = None,
                 headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = dict(headers or {})


def error_body(code: str, message: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = flatten_fields(fields)
    return {"error": error}


def flatten_fields(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {dotted.field: [reasons]}, so every error names its field plainly."""
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            flat.update(flatten_fields(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(messages, (list, tuple)) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    if isinstance(messages, (list, tuple)):
        flat = {}
        for item in messages:
            for key, reasons in flatten_fields(item, prefix).items():
                flat.setdefault(key, []).extend(reasons)
        return flat
    return {prefix or "_schema": [str(messages)]}


def invalid_params_message(fields: Mapping[str, Any]) -> str:
    named = ", ".join(sorted(flatten_fields(fields))) if fields else ""
    return f"Invalid request parameters: {named}." if named else "Invalid request parameters."


def http_error_code(error: HTTPException) -> str:
    """A werkzeug error's machine code: its name in snake case (not_found, method_not_allowed, ...)."""
    return reason_code(error.name or "error")


def reason_code(reason: str) -> str:
    """An HTTP reason phrase as a machine code: "URI Too Long" -> uri_too_long."""
    return reason.lower().replace(" ", "_").replace("'", "")


class GpuorchApi(Api):
    """flask-smorest's Api, answering and documenting every HTTP error in the ErrorSchema shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        # webargs reports its findings as {location: {field: [reasons]}}; a client only needs the field.
        located = data.get("messages") or {}
        fields = {}
        for value in located.values() if isinstance(located, Mapping) else ():
            fields.update(flatten_fields(value))
        if error.code == 422:
            code, message = "invalid_params", invalid_params_message(fields)
        else:
            code, message = http_error_code(error), data.get("message") or error.description or error.name
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        headers.extend((data.get("headers") or {}).items())
        return error_body(code, message, fields), error.code, headers


@dataclass(frozen=True)
class Answer:
    """How the API answers one kind of error: its status and code, and what of the error it shows."""

    status: int
    code: str
    message: Callable[[Any], str] = lambda error: sentence(str(error))
    fields: Callable[[Any], Mapping[str, Any] | None] = lambda error: None
    # Seconds a client should wait before trying again (Retry-After); None: no header.
    retry_after: Callable[[Any], float | None] = lambda error: None
    # Logged with its traceback: a dependency failed, which an operator wants to see.
    logged: bool = False


def sentence(text: str) -> str:
    return text if text.endswith(".") else f"{text}."


def _too_large_message(error: InputTooLarge) -> str:
    others = sorted(set(flatten_fields(error.errors)) - set(error.too_large))
    return f"Inline image over the size limit: {', '.join(error.too_large)}." + (
        f" Also refused: {', '.join(others)}." if others else "")


def _rate_limited_message(error: RateLimited) -> str:
    return (f"This API key may submit {error.limit.per_minute:g} jobs a minute (bursts of {error.limit.burst}); "
            f"try again in {retry_after_header(error.retry_after)} s.")


def _not_cancellable_message(error: TransitionRefused) -> str:
    return f"Job {error.job_id} is already {error.current}; only queued or running jobs can be cancelled."


def _admission_retry_after(error: AdmissionRefused) -> float:
    return error.retry_after


UNAVAILABLE_MESSAGE = "The job service cannot reach its queue or store; try again shortly."
UNAVAILABLE = Answer(503, "unavailable", lambda error: UNAVAILABLE_MESSAGE, logged=True)
# EC2's throttling and brief outages pass within seconds to a minute: half a minute is a fair first wait.
EC2_RETRY_AFTER_S = 30

#: Each error's answer: that of the first class of its MRO found here, so a class before its branch.
ANSWERS: dict[type[BaseException], Answer] = {
    # Never acceptable as sent.
    InputTooLarge: Answer(413, "image_too_large", _too_large_message, fields=lambda error: error.errors),
    IdempotencyKeyReused: Answer(422, "idempotency_key_reused", fields=lambda error: error.errors),
    ParamsInvalid: Answer(422, "invalid_params", lambda error: invalid_params_message(error.errors),
                          fields=lambda error: error.errors),
    UnknownWorkflow: Answer(404, "unknown_workflow"),
    RequestRefused: Answer(400, "bad_request"),
    # Not now: Retry-After says when.
    RateLimited: Answer(429, "rate_limited", _rate_limited_message, retry_after=_admission_retry_after),
    IdempotencyKeyInUse: Answer(409, "idempotency_key_in_use", retry_after=_admission_retry_after,
                                fields=lambda error: {IDEMPOTENCY_HEADER: ["the same request with it is being submitted "
                                                                           "now; retry shortly to get its result"]}),
    BacklogFull: Answer(503, "backlog_full", retry_after=_admission_retry_after),
    SpendCapReached: Answer(402, "spend_cap_reached", retry_after=_admission_retry_after),
    TooManyWaiters: Answer(503, "too_many_waiters", retry_after=_admission_retry_after),
    AdmissionRefused: Answer(429, "too_many_requests", retry_after=_admission_retry_after),
    # The record's state does not allow it (only cancelling moves a job's status from a route).
    TransitionRefused: Answer(409, "job_finished", _not_cancellable_message),
    UnknownInstance: Answer(404, "instance_not_found"),
    Conflict: Answer(409, "conflict"),
    # A dependency cannot serve now; AWS's and the broker's own errors are answered as such.
    CapacityError: Answer(409, "no_capacity"),
    Ec2Unavailable: Answer(503, "unavailable", lambda error: f"EC2 did not answer: {error}.",
                           retry_after=lambda error: EC2_RETRY_AFTER_S),
    Unavailable: UNAVAILABLE,
    BotoCoreError: UNAVAILABLE,
    ClientError: UNAVAILABLE,
    OperationalError: UNAVAILABLE,
}


def answer_for(error: BaseException) -> Answer | None:
    """The table's answer for the error (None for an error it does not name: Flask answers it 500)."""
    return next((ANSWERS[kind] for kind in type(error).__mro__ if kind in ANSWERS), None)


def _answer(error: Exception):
    if isinstance(error, ApiError):
        return error_body(error.code, error.message, error.fields), error.status, error.headers
    answer = answer_for(error)
    if answer.logged:
        log.exception("%s %s refused: a backing service failed: %s", request.method, request.path, error)
    wait = answer.retry_after(error)
    headers = {"Retry-After": str(retry_after_header(wait))} if wait is not None else {}
    return error_body(answer.code, answer.message(error), answer.fields(error)), answer.status, headers


def register_error_handlers(app: Flask) -> None:
    """One handler for every error the table names (and the API's own); HTTP errors are GpuorchApi's."""
    for kind in ANSWERS:
        app.register_error_handler(kind, _answer)
