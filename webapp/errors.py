"""The one JSON error shape of the API, and the handlers that turn every failure into it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, request
from flask_smorest import Api
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

from gpuorch.access.backlog import BacklogFull
from gpuorch.access.ratelimit import RateLimited, retry_after_header
from gpuorch.errors import InputTooLarge, ParamsInvalid, RequestRefused, UnknownWorkflow

log = logging.getLogger(__name__)

# Raised when AWS (the job table or the broker) cannot be reached: the request is refused as a whole.
UNAVAILABLE_ERRORS = (BotoCoreError, ClientError, OperationalError)


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


def _api_error(error: ApiError):
    return error_body(error.code, error.message, error.fields), error.status, error.headers


def _input_too_large(error: InputTooLarge):
    others = sorted(set(flatten_fields(error.errors)) - set(error.too_large))
    message = f"Inline image over the size limit: {', '.join(error.too_large)}." + (
        f" Also refused: {', '.join(others)}." if others else "")
    return error_body("image_too_large", message, error.errors), 413


def _rate_limited(error: RateLimited):
    wait = retry_after_header(error.retry_after)
    message = (f"This API key may submit {error.limit.per_minute:g} jobs a minute (bursts of {error.limit.burst}); "
               f"try again in {wait} s.")
    return error_body("rate_limited", message), 429, {"Retry-After": str(wait)}


def _backlog_full(error: BacklogFull):
    return error_body("backlog_full", str(error)), 503, {"Retry-After": str(error.retry_after)}


def _params_invalid(error: ParamsInvalid):
    return error_body("invalid_params", invalid_params_message(error.errors), error.errors), 422


def _unknown_workflow(error: UnknownWorkflow):
    return error_body("unknown_workflow", str(error)), 404


def _unavailable(error: Exception):
    log.exception("%s %s refused: a backing service failed: %s", request.method, request.path, error)
    return error_body("unavailable", "The job service cannot reach its queue or store; try again shortly."), 503


def register_error_handlers(app: Flask) -> None:
    """Handlers for the errors raised below the routes; HTTP errors are GpuorchApi's."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(InputTooLarge, _input_too_large)
    app.register_error_handler(RateLimited, _rate_limited)
    app.register_error_handler(BacklogFull, _backlog_full)
    app.register_error_handler(ParamsInvalid, _params_invalid)
    app.register_error_handler(UnknownWorkflow, _unknown_workflow)
    for kind in UNAVAILABLE_ERRORS:
        app.register_error_handler(kind, _unavailable)
