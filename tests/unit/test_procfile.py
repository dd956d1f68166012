"""The Procfile parser, and the shipped Procfile's processes."""

import re

import pytest
from gunicorn.util import load_class
from gunicorn.workers.gthread import ThreadWorker

from gpuorch.local.procfile import ProcfileError, load_procfile, parse_procfile
from gpuorch.settings import REPO_ROOT


def test_parse_skips_comments_and_blanks():
    assert parse_procfile("# c\n\nweb: run a\nworker:  run b  \n") == {"web": "run a", "worker": "run b"}


@pytest.mark.parametrize("text,message", [
    ("just words\n", "expected 'name: command'"),
    ("a: x\na: y\n", "defined twice"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(ProcfileError, match=message):
        parse_procfile(text)


def test_shipped_procfile_runs_the_api_and_a_worker_on_the_gpu_queue():
    processes = load_procfile(REPO_ROOT / "Procfile")
    assert "webapp.wsgi:app" in processes["api"]
    assert processes["gpu_worker"] == "python -m workers.gpu"


def test_the_api_runs_the_json_error_worker_wherever_it_is_configured():
    [worker_class] = re.findall(r"--worker-class (\S+)", load_procfile(REPO_ROOT / "Procfile")["api"])

    assert worker_class == "webapp.gunicorn_worker.JsonErrorWorker"
    assert issubclass(load_class(worker_class), ThreadWorker)
    # Read as text: importing the settings module would set up the metrics folder of a gunicorn master.
    assert f'worker_class = "{worker_class}"' in (REPO_ROOT / "webapp" / "gunicorn_conf.py").read_text()
