"""Running the `gpuorch` command in-process with the test's settings as its environment."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from gpuorch.cli.main import main
from gpuorch.settings import Settings, settings_env


def environment(settings: Settings) -> dict[str, str]:
    """The GPUORCH_* variables that Settings.from_env reads back as `settings`."""
    return settings_env(settings)


@pytest.fixture
def gpuorch(settings):
    """Run `gpuorch ARGS...` under the test's settings (override some with settings=)."""

    def run(*args: str, settings: Settings = settings) -> Result:
        return CliRunner().invoke(main, list(args), env=environment(settings))

    return run
