"""Who may call which route: one before-request check for every route, open ones listed by name.

Every route needs `Authorization: Bearer <API key>` except OPEN_ENDPOINTS, so a new route is protected by
default. The role a blueprint needs is declared where it is registered (`register(api, blueprint, OPERATOR)`);
a blueprint registered without a declaration needs an operator key, so nothing is left open by mistake.

Keys are verified through a per-process cache (GPUORCH_KEY_CACHE_SECONDS): a revoked key is refused by every
API process within that long. Operator keys see and cancel every owner's jobs; user keys only their owner's.
"""

from __future__ import annotations

from collections.abc import Mapping

from http import HTTPStatus

from apispec import BasePlugin
from flask import Flask, current_app, g, request
from flask_smorest import Api, Blueprint

from gpuorch.access.keys import OPERATOR, USER, ApiKey
from webapp.context import current
from webapp.errors import ApiError

__all__ = ["OPEN_ENDPOINTS", "OPERATOR", "USER", "AccessResponses", "access_responses", "bearer_token", "caller", "install",
           "register"]

# Answered without a key: service info, health (load balancers and probes), the OpenAPI document and its page.
# /metrics, when it comes, is decided separately: add its endpoint here to leave it open.
OPEN_ENDPOINTS = frozenset({
    "service.ServiceInfoView",
    "service.HealthView",
    "api-docs.openapi_json",
    "api-docs.openapi_swagger_ui",
})
ROLES_EXTENSION = "gpuorch.roles"
SCHEME = "bearerAuth"
CHALLENGE = 'Bearer realm="gpuorch"'


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when absent or of another shape."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def register(app: Flask, api: Api, blueprint: Blueprint, role: str = USER) -> None:
    """Register a blueprint whose routes need a key of `role` (USER: any key; OPERATOR: an operator's)."""
    if role not in (USER, OPERATOR):
        raise ValueError(f"role must be {USER} or {OPERATOR}, not {role!r}")
    # Before the blueprint's paths reach the document, so that AccessResponses knows their role.
    app.extensions[ROLES_EXTENSION][blueprint.name] = role
    api.register_blueprint(blueprint)


class AccessResponses(BasePlugin):
    """Lists the check's own answers on every operation of the OpenAPI document: 401 wherever a key is needed,
    403 where it must be an operator's, so that a client (and the conformance tests) find each status documented.
    Give it to the Api (`spec_kwargs={"extra_plugins": [...]}`) before any blueprint is registered."""

    def __init__(self, roles: Mapping[str, str]):
        self.roles = roles  # blueprint name -> role, filled by register()

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        rule = kwargs.get("rule")
        if rule is None or rule.endpoint in OPEN_ENDPOINTS or not operations:
            return
        role = needed_role(rule.endpoint.partition(".")[0], self.roles)
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", HTTPStatus.UNAUTHORIZED.name)
            if role == OPERATOR:
                responses.setdefault("403", HTTPStatus.FORBIDDEN.name)


# The document's default: every operation needs the bearer key; open ones say `security: []` (NO_KEY).
SECURITY = [{SCHEME: []}]
NO_KEY: list = []


def access_responses(app: Flask) -> AccessResponses:
    """The app's role table (empty until blueprints are registered) and the plugin that documents it."""
    return AccessResponses(app.extensions.setdefault(ROLES_EXTENSION, {}))


def install(app: Flask, api: Api) -> None:
    """Check every request's key before its route runs, and document the bearer scheme for the docs page."""
    app.extensions.setdefault(ROLES_EXTENSION, {})
    app.before_request(_authenticate)
    api.spec.components.security_scheme(SCHEME, {
        "type": "http", "scheme": "bearer", "bearerFormat": "gpo_<key id>_<secret>",
        "description": "An API key made by `gpuorch keys create`. Operator routes (the GPU, costs) need an "
                       "operator key.",
    })


def _authenticate() -> None:
    if request.endpoint in OPEN_ENDPOINTS:
        return
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        raise ApiError(401, "unauthorized", "Send an API key: Authorization: Bearer <key>.",
                       headers={"WWW-Authenticate": CHALLENGE})
    key = current().keys.verify(token)
    if key is None:
        raise ApiError(401, "invalid_key", "The API key is not known or has been revoked.",
                       headers={"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})
    g.api_key = key
    if request.endpoint is None:
        return  # no route: the 404 or 405 follows, for any key
    if not may_call(key, needed_role(request.blueprint, current_app.extensions[ROLES_EXTENSION])):
        raise ApiError(403, "forbidden", f"{request.method} {request.path} needs an operator key; this key is "
                                         f"{key.key_id}, a {key.role} key of {key.owner}.")


def needed_role(blueprint: str | None, roles: Mapping[str, str]) -> str:
    """The role a route of `blueprint` needs: as declared at registration, else OPERATOR (deny by default)."""
    return roles.get(blueprint or "", OPERATOR)


def may_call(key: ApiKey, role: str) -> bool:
    return role == USER or key.operator


def caller() -> ApiKey:
    """The key of the current request (set by the check above)."""
    return g.api_key
