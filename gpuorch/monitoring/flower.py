"""The Flower process: Celery's dashboard and HTTP API on the gpuorch app, configured from the Settings."""

from __future__ import annotations

import ipaddress
import logging
import sys

from gpuorch.celery_app import app
from gpuorch.logs import configure_logging
from gpuorch.settings import Settings

log = logging.getLogger(__name__)


def flower_argv(settings: Settings) -> list[str]:
    """`celery flower` arguments. They reach Flower in-process, so a --basic-auth password is not shown by `ps`."""
    argv = [
        "flower",
        f"--address={settings.flower_address}",
        f"--port={settings.flower_port}",
        f"--inspect_timeout={settings.flower_inspect_timeout * 1000:.0f}",
        # The workers send events by configuration: Flower's broadcast every 5 s to turn them on is not needed.
        "--enable_events=False",
    ]
    if settings.flower_basic_auth:
        argv.append(f"--basic_auth={settings.flower_basic_auth}")
    return argv


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name, or empty: every interface


def start_problems(settings: Settings) -> list[str]:
    """Why Flower must not start with these settings."""
    problems = []
    if not settings.monitoring:
        problems.append("GPUORCH_MONITORING is off: the workers send no events and take no commands, "
                        "Flower would show nothing")
    if not settings.flower_basic_auth and not is_loopback(settings.flower_address):
        problems.append(f"GPUORCH_FLOWER_ADDRESS={settings.flower_address!r} without GPUORCH_FLOWER_BASIC_AUTH would "
                        "show every job's parameters to whoever reaches it: set a login, or keep it on loopback")
    return problems


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    problems = start_problems(settings)
    for problem in problems:
        log.error("refusing to start: %s", problem)
    if problems:
        return 2
    app.use_settings(settings)
    log.info("Flower on http://%s:%d/ (basic auth %s)", settings.flower_address, settings.flower_port,
             "on" if settings.flower_basic_auth else "off")
    app.start(flower_argv(settings) + list(argv or []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
