"""gunicorn's settings for the API (`gunicorn -c python:webapp.gunicorn_conf`): its workers' metrics are summed."""

from __future__ import annotations

import shutil

from gpuorch.metrics.exposition import enable_multiprocess, mark_process_dead, metrics_folder
from gpuorch.errors import ConfigurationError
from gpuorch.settings import Settings

# Read in gunicorn's master before any worker forks, so every worker writes its figures to one folder and
# each one's GET /metrics answers the sum over all of them.
_settings = Settings.from_env()
_folder = metrics_folder(_settings.metrics_dir, "api")
enable_multiprocess(_folder)

# gthread, answering gunicorn's own refusals (414, 431, 400 before the app is called) in the API's JSON error shape.
# The Procfile's api line names it too: a --worker-class on the command line wins over this file.
worker_class = "webapp.gunicorn_worker.JsonErrorWorker"

# gunicorn 25.1 opens a control socket for `gunicornc` at every start, under $XDG_RUNTIME_DIR or $HOME/.gunicorn; the
# unit's user has no writable home (ProtectHome, a read-only system), so every start logged a control server error.
# Nothing here uses gunicornc: systemd and the container runtime stop and restart the API.
control_socket_disable = True


def on_starting(server) -> None:
    """Refuse to start when waiting requests could take every thread of a worker: the others would find none."""
    threads = server.cfg.threads
    if _settings.api_waiters >= threads:
        raise ConfigurationError(
            f"GPUORCH_API_WAITERS={_settings.api_waiters} must be below gunicorn's threads per worker ({threads}, "
            "GPUORCH_API_THREADS): requests waiting for jobs would leave none for the others")


def child_exit(server, worker) -> None:
    mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if not _settings.metrics_dir:
        shutil.rmtree(_folder, ignore_errors=True)  # the temporary folder made for this run
