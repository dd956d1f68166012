"""Headless Chromium for dashboard tests: Debian's browser, driven by Playwright, with the flags this host needs."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: tests run as root. The rest keep Chromium from reaching out (updates, sync, QUIC probes): the
# host's closed network refuses those connections, many at a time.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_or_skip() -> str:
    """Debian's Chromium; without it the test fails in CI (`make test` installs it there) and is skipped elsewhere."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return str(CHROMIUM)
    reason = (f"{CHROMIUM} not found: `make test` installs Debian's chromium (apt-get, as root), "
              "or run `apt-get install chromium`")
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def browser_page(profile_dir: Path, credentials: tuple[str, str] | None = None) -> Iterator:
    """A Playwright page in headless Chromium with a new, empty profile; `credentials` answer HTTP basic auth."""
    from playwright.sync_api import sync_playwright  # test-only dependency, imported where it is used

    executable = chromium_or_skip()
    profile_dir.mkdir(parents=True, exist_ok=False)  # new and empty: nothing carried over between runs
    login = {"username": credentials[0], "password": credentials[1]} if credentials else None
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=executable, headless=True, args=FLAGS, http_credentials=login,
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
