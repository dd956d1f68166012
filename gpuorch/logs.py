"""Logging set-up for gpuorch's processes: one line per event, with the process and logger names."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once, at a process's entry point."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    # botocore logs every retry at DEBUG and credentials look-ups at INFO: keep them out of job logs.
    logging.getLogger("botocore").setLevel(logging.WARNING)
