"""Schemathesis against the served OpenAPI document, in process over the moto server: no 5xx, and every answer's
status, content type, headers and body as documented (errors in the one error shape)."""

from __future__ import annotations

import dataclasses

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gpuorch.provision import Provisioner
from gpuorch.celery.app import create_celery_app
from gpuorch.services import Services
from tests.conftest import make_key, unique_settings
from tests.webapp.network import loopback_only
from webapp import create_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Per operation and mode: 16 operations, valid and invalid requests, about a minute on the 2-core machine.
EXAMPLES = 25


@pytest.fixture
def api_schema(moto_endpoint):
    """The document the app serves, loaded over WSGI; the app's settings refuse http:// and loopback inputs, as
    deployed, and a 1 MiB body limit keeps generated bodies small."""
    settings = dataclasses.replace(unique_settings(moto_endpoint), max_request_bytes=1024 * 1024)
    services = Services(settings)
    Provisioner(services.aws, settings).run()
    celery_app = create_celery_app(settings)
    with loopback_only():  # a submission names https:// images; nothing may be fetched or even resolved
        schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(settings, celery_app=celery_app))
        # An operator key reaches every operation (and sees every job): the whole document is exercised.
        yield schema, {"Authorization": f"Bearer {make_key(services, 'ops', operator=True)}"}
    celery_app.close()


def fuzz(operation, mode: GenerationMode, headers: dict[str, str]) -> None:
    """EXAMPLES generated requests to one operation, each answer checked; Hypothesis shrinks a failure."""

    @hypothesis_settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


# schemathesis's own pytest plugin (from_fixture) does not run under pytest 9; its strategies and checks do.
def test_every_operation_answers_as_documented(api_schema):
    api_schema, api_headers = api_schema
    failures = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 16, [operation.label for operation in operations]
    for operation in operations:
        for mode in GenerationMode:  # valid requests, then invalid ones (each must be refused as documented)
            try:
                fuzz(operation, mode, api_headers)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # no parameter that can be sent invalid
            except Exception as exc:  # every operation is run; all failures are reported together
                failures[f"{operation.label} ({mode.value})"] = exc
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
