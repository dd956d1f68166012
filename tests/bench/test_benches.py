"""Each benchmark still runs: its small size (`--quick`) exits 0 and ends with its figure line.

The full sizes are benchmarks (README: Benchmarks) and too slow for `make test`; the small ones take seconds, so a
bench that stopped working (a renamed import, a removed call, a worker that refuses to start) fails here first.
Their figures mean nothing at this size and are not judged, except that the load bench loses no job.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.paths import REPO

NUMBER = r"\d+(?:\.\d+)?"
BENCHES = [
    pytest.param("submit.py", rf"^submit p50 {NUMBER} floor p50 {NUMBER} ratio {NUMBER}$",
                 marks=pytest.mark.integration, id="submit"),
    pytest.param("load.py", rf"^load submitted \d+ accepted \d+ lost (?P<lost>\d+) p99 submit {NUMBER}$",
                 marks=pytest.mark.integration, id="load"),
    pytest.param("cost.py", rf"^cost vs serverless median {NUMBER} max {NUMBER}; p95 wait vs serverless median "
                            rf"{NUMBER}; worst p95 vs replaced {NUMBER}$", id="cost"),
    pytest.param("gpu_busy.py", rf"^gpu busy {NUMBER} sequential {NUMBER}$",
                 marks=pytest.mark.integration, id="gpu_busy"),
    pytest.param("models.py", rf"^models sync {NUMBER} single {NUMBER} ratio {NUMBER}$",
                 marks=pytest.mark.integration, id="models"),
    pytest.param("latency.py", rf"^dispatch p50 {NUMBER} floor {NUMBER} ratio {NUMBER}; notify p50 {NUMBER} floor "
                               rf"{NUMBER} ratio {NUMBER}$", marks=pytest.mark.integration, id="latency"),
]


@pytest.mark.parametrize("bench,last_line", BENCHES)
def test_the_bench_runs_at_its_small_size(bench, last_line, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / bench), "--quick"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)

    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    last = done.stdout.strip().splitlines()[-1]
    figures = re.match(last_line, last)
    assert figures, f"the last line is not the figure line: {last!r}"
    assert figures.groupdict().get("lost", "0") == "0", last
