"""Tasks of the always-on control worker (the control queue, never the GPU queue)."""

from __future__ import annotations

from gpuorch.celery_app import app
from gpuorch.jobs.deadletters import sweep_dead_letters


@app.task(name="gpuorch.control.sweep_dead_letters", ignore_result=True)
def sweep_dead_letter_queue() -> int:
    """Record as failed the jobs whose message reached the GPU dead-letter queue; returns how many were read."""
    services = app.services
    settings = services.settings
    letters = sweep_dead_letters(
        services.aws.sqs,
        services.aws.queue_url(settings.gpu_dead_letter_queue),
        services.jobs,
        max_receive_count=settings.max_receive_count,
    )
    return len(letters)
