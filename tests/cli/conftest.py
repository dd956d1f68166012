"""Running the `gpuorch` command in-process with the test's settings as its environment; the API it talks to, served on
loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import pytest
from click.testing import CliRunner, Result
from werkzeug.serving import make_server

from gpuorch.celery.app import create_celery_app

from gpuorch.cli.main import main
from gpuorch.settings import Settings, settings_env
from tests.conftest import make_key
from webapp import create_app


def environment(settings: Settings) -> dict[str, str]:
    """The GPUORCH_* variables that Settings.from_env reads back as `settings`."""
    return settings_env(settings)


@pytest.fixture
def gpuorch(settings):
    """Run `gpuorch ARGS...` under the test's settings (override some with settings=)."""

    def run(*args: str, settings: Settings = settings) -> Result:
        return CliRunner().invoke(main, list(args), env=environment(settings))

    return run


@contextlib.contextmanager
def serve(settings, provisioned):
    """The API on a loopback port: (settings pointing at it with a user key of alice, the Flask app, the services)."""
    celery_app = create_celery_app(settings)
    app = create_app(settings, celery_app=celery_app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield (dataclasses.replace(settings, api_base_url=f"http://127.0.0.1:{server.server_port}",
                               api_key=make_key(provisioned, "alice")), app, provisioned)
    server.shutdown()
    thread.join()
    celery_app.close()


@pytest.fixture
def served(settings, provisioned):
    """The API on a loopback port (serve)."""
    with serve(settings, provisioned) as running:
        yield running
