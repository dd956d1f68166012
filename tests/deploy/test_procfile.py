"""The shipped Procfile: the processes every deployment runs, and the API's gunicorn worker class."""

import re

from gunicorn.util import load_class
from gunicorn.workers.gthread import ThreadWorker

from gpuorch_dev.local.paths import PROCFILE
from gpuorch_dev.local.procfile import load_procfile
from tests.paths import REPO


def test_shipped_procfile_runs_the_api_and_a_worker_on_the_gpu_queue():
    processes = load_procfile(PROCFILE)
    assert "webapp.wsgi:app" in processes["api"]
    assert processes["gpu_worker"] == "python -m workers.gpu"


def test_the_api_runs_the_json_error_worker_wherever_it_is_configured():
    [worker_class] = re.findall(r"--worker-class (\S+)", load_procfile(PROCFILE)["api"])

    assert worker_class == "webapp.gunicorn_worker.JsonErrorWorker"
    assert issubclass(load_class(worker_class), ThreadWorker)
    # Read as text: importing the settings module would set up the metrics folder of a gunicorn master.
    assert f'worker_class = "{worker_class}"' in (REPO / "webapp" / "gunicorn_conf.py").read_text()


def test_the_api_keeps_threads_beyond_its_waiting_requests():
    """Waiting requests (GPUORCH_API_WAITERS per worker) hold a thread each: the Procfile's threads leave others
    some, and gunicorn refuses to start a worker they could fill."""
    import os
    import subprocess
    import sys

    from gpuorch.settings import Settings

    [threads] = re.findall(r"--threads \$\{GPUORCH_API_THREADS:-(\d+)\}", load_procfile(PROCFILE)["api"])
    assert int(threads) > Settings().api_waiters
    refused = subprocess.run([sys.executable, "-m", "gunicorn", "--config", "python:webapp.gunicorn_conf", "--bind",
                              "127.0.0.1:0", "--threads", "4", "webapp.wsgi:app"], cwd=REPO, capture_output=True,
                             text=True, timeout=60, env={**os.environ, "GPUORCH_API_WAITERS": "4"})
    assert refused.returncode != 0 and "GPUORCH_API_WAITERS=4 must be below" in refused.stderr
