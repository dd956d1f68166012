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
