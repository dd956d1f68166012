"""`gpuorch simulate`: a trace replayed through a policy, beside the replaced rule and the optimum; bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpuorch.cli.main import main
from lifecycle.simulation.workload import REFERENCE_TRACES, reference_trace_path


def simulate(*args: str) -> Result:
    return CliRunner().invoke(main, ["simulate", *args])


@pytest.fixture
def small_trace(tmp_path) -> Path:
    """Three jobs in the first hour of a day."""
    path = tmp_path / "small.csv"
    path.write_text("arrival_s,gpu_s\n10.0,20.0\n600.0,30.0\n3000.0,25.0\n")
    return path


@pytest.mark.parametrize("name", sorted(REFERENCE_TRACES))
def test_each_shipped_trace(name):
    path = reference_trace_path(name)
    jobs = len(path.read_text().splitlines()) - 1

    result = simulate("--trace", str(path))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"trace {path}: {jobs} jobs, ")
    assert [line.split()[0] for line in lines[2:6]] == ["policy", "default", "replaced", "optimum"]
    assert lines[-1].startswith("default: $")


@pytest.mark.parametrize("spec,row", [
    ("fixed-10", "fixed-10"),
    ("default,max_instances=2", "default,max_instances=2"),
    ("replaced", "replaced"),
])
def test_a_policy_spec(small_trace, spec, row):
    result = simulate("--trace", str(small_trace), "--policy", spec)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"trace {small_trace}: 3 jobs, ")
    assert result.stdout.splitlines()[3].split()[0] == row


@pytest.mark.parametrize("content,problem", [
    (None, "missing.csv: No such file or directory"),
    ("when,seconds\n1,2\n", "the first row must be arrival_s,gpu_s"),
    ("arrival_s,gpu_s\n1.0,2.0\nsoon,2.0\n", ":3: expected numbers, got 'soon,2.0'"),
    ("arrival_s,gpu_s\n1.0,0\n", ":2: arrival_s must be >= 0, gpu_s and ttl_s > 0"),
])
def test_a_bad_trace_is_a_usage_error_naming_the_problem(tmp_path, content, problem):
    path = tmp_path / "missing.csv"
    if content is not None:
        path.write_text(content)

    result = simulate("--trace", str(path))

    assert result.exit_code == 2
    assert "Invalid value for '--trace'" in result.stderr
    assert problem in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("spec,problem", [
    ("nightly", "unknown policy 'nightly'; known: default, replaced, fixed-<minutes>"),
    ("idle_minutes=5", "unknown policy setting(s) idle_minutes"),
    ("max_instances=two", "max_instances='two': expected an integer"),
    ("replaced,max_instances=2", "the replaced rule takes no overrides"),
    ("min_instances=3", "max_instances must be at least 1 and at least min_instances"),
])
def test_a_bad_policy_is_a_usage_error_naming_the_problem(small_trace, spec, problem):
    result = simulate("--trace", str(small_trace), "--policy", spec)

    assert result.exit_code == 2
    assert "Invalid value for '--policy'" in result.stderr
    assert problem in result.stderr


def test_the_trace_is_required():
    result = simulate()

    assert result.exit_code == 2
    assert "Missing option '--trace'" in result.stderr
