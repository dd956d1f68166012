"""The Flower process: Celery's dashboard and HTTP API on the gpuorch app, configured from the Settings."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from collections.abc import MutableMapping

from gpuorch.celery.app import create_celery_app
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


def basic_auth_problems(value: str) -> list[str]:
    """What is wrong with a GPUORCH_FLOWER_BASIC_AUTH value, as Flower reads it (user:password,user2:password2)."""
    problems = []
    for number, pair in enumerate(value.split(","), start=1):
        user, colon, password = pair.partition(":")
        if not colon or not user.strip() or not password:
            # Never the pair itself: it may hold a password.
            problems.append(f"GPUORCH_FLOWER_BASIC_AUTH pair {number} is not user:password with both non-empty")
    return problems


def start_problems(settings: Settings) -> list[str]:
    """Why Flower must not start with these settings.

    Flower shows every job's parameters (prompts, input URIs) and its pages carry worker controls (shutdown,
    pool size, revoke). Loopback alone does not guard that on a shared always-on host: every local user and
    process, every SSM or SSH port forward and every container with host networking reaches it, and a browser
    on the host can be turned against it by DNS rebinding (Flower does not check the Host header). So a login
    is required everywhere; going without one is an explicit development choice, and only on loopback.
    """
    problems = []
    if not settings.monitoring:
        problems.append("GPUORCH_MONITORING is off: the workers send no events and take no commands, "
                        "Flower would show nothing")
    if settings.flower_basic_auth:
        problems.extend(basic_auth_problems(settings.flower_basic_auth))
    elif not settings.flower_allow_no_auth:
        problems.append("no login: set GPUORCH_FLOWER_BASIC_AUTH=user:password (for development on loopback "
                        "only, GPUORCH_FLOWER_ALLOW_NO_AUTH=true starts it without one)")
    elif not is_loopback(settings.flower_address):
        problems.append(f"GPUORCH_FLOWER_ALLOW_NO_AUTH is for loopback only; GPUORCH_FLOWER_ADDRESS="
                        f"{settings.flower_address!r} without GPUORCH_FLOWER_BASIC_AUTH would show every job's "
                        "parameters to whoever reaches it")
    return problems


# Flower reads FLOWER_* variables as options too; this one would open its API without a login.
_OPENING_VARIABLES = ("FLOWER_UNAUTHENTICATED_API",)


def drop_opening_variables(environ: MutableMapping[str, str]) -> list[str]:
    """Remove the Flower variables that would loosen what start_problems checked; returns those removed."""
    return [var for var in _OPENING_VARIABLES if environ.pop(var, None) is not None]


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    problems = start_problems(settings)
    for problem in problems:
        log.error("refusing to start: %s", problem)
    if problems:
        return 2
    for var in drop_opening_variables(os.environ):
        log.warning("ignoring %s: gpuorch's settings alone decide who may use Flower", var)
    if not settings.flower_basic_auth:
        log.warning("Flower without a login (GPUORCH_FLOWER_ALLOW_NO_AUTH), on loopback: for development only")
    app = create_celery_app(settings)
    log.info("Flower on http://%s:%d/ (basic auth %s)", settings.flower_address, settings.flower_port,
             "on" if settings.flower_basic_auth else "off")
    app.start(flower_argv(settings) + list(argv or []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
