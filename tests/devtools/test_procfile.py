"""The Procfile parser the local stack reads the processes with."""

import pytest

from gpuorch_dev.local.procfile import ProcfileError, parse_procfile


def test_parse_skips_comments_and_blanks():
    assert parse_procfile("# c\n\nweb: run a\nworker:  run b  \n") == {"web": "run a", "worker": "run b"}


@pytest.mark.parametrize("text,message", [
    ("just words\n", "expected 'name: command'"),
    ("a: x\na: y\n", "defined twice"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(ProcfileError, match=message):
        parse_procfile(text)
