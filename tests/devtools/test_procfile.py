"""The Procfile parser, and the shipped Procfile's processes."""

import pytest

from gpuorch_dev.local.procfile import ProcfileError, load_procfile, parse_procfile
from gpuorch_dev.local.paths import PROCFILE


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
    processes = load_procfile(PROCFILE)
    assert "webapp.wsgi:app" in processes["api"]
    assert processes["gpu_worker"] == "python -m workers.gpu"
