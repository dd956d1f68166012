"""Celery beat: the one scheduler of periodic control tasks (run exactly one; beat has no locking)."""

from __future__ import annotations

import sys

from gpuorch.celery.app import create_celery_app
from gpuorch.logs import configure_logging
from gpuorch.settings import Settings


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    app = create_celery_app(settings)
    app.start(["beat", "--schedule", settings.beat_schedule_file, "--loglevel", settings.log_level, *(argv or [])])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
