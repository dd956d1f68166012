"""gpuorch as users install it: its wheel, installed outside the checkout, finds everything it ships.

Why this exists: the tests and the Makefile use an editable install, where every module and data file is read
from the checkout, so a file missing from the wheel (the built-in workflows, the simulator's reference traces) or
a path that climbs into the checkout works there and fails only once deployed. Here the wheel is built from the
package's own files, installed into a folder of its own, and each entry point's start runs in a process whose
working directory is outside the checkout, with that folder first on its path; each check also says where its
modules came from, so an editable copy answering in its place fails the test. Dependencies are not installed
again: the test's virtualenv has them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
from gpuorch_dev.emulator import EmulatorConfig, start_in_thread
from gpuorch.model_files import ModelFiles
from lifecycle.simulation.workload import REFERENCE_TRACES
from tests.paths import CATALOGUE, REPO
from gpuorch.workflows import load_workflows
from gpuorch.workflows.models import model_files
from tests.support.model_files import builtin_folders

pytestmark = pytest.mark.installed

# What the wheel is built from: setup.cfg's packages and metadata (the container image's build context, less the
# deployment files), so nothing else in the checkout can stand in for what the wheel lacks.
DISTRIBUTION_FILES = ("pyproject.toml", "setup.cfg", "README.md", "gpuorch", "lifecycle", "webapp", "workers")
TOP_LEVEL = ("gpuorch", "lifecycle", "webapp", "workers")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel is installed into (pip's --target: modules, package data and the `gpuorch` script)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in DISTRIBUTION_FILES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(root / "dist"), str(source)],
                           capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stderr
    [wheel] = (root / "dist").glob("gpuorch-*.whl")
    target = root / "site"
    done = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--quiet", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
def run_installed(installed, tmp_path):
    """Run a command from a folder outside the checkout, the installed copy first on the path."""

    def run(argv: list[str], **env: str) -> subprocess.CompletedProcess:
        outside = tmp_path / "elsewhere"
        outside.mkdir(exist_ok=True)
        environ = {**os.environ, "PYTHONPATH": str(installed), "AWS_EC2_METADATA_DISABLED": "true", **env}
        answer = subprocess.run(argv, cwd=outside, env=environ, capture_output=True, text=True, timeout=120)
        assert answer.returncode == 0, f"exit {answer.returncode}\n{answer.stdout}\n{answer.stderr}"
        return answer

    return run


def python_says(run_installed, code: str, **env: str) -> dict:
    """Run `code` in the installed package; it prints one JSON object, which also names where its modules are."""
    where = "import sys; _where = {n: sys.modules[n].__file__ for n in %r if n in sys.modules}" % (TOP_LEVEL,)
    script = textwrap.dedent(code) + f"\n{where}\nprint(json.dumps({{**said, 'modules': _where}}))\n"
    answer = run_installed([sys.executable, "-c", "import json\n" + script], **env)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def assert_installed_copy(said: dict, installed: Path) -> None:
    assert said["modules"], "no gpuorch module was imported"
    for name, path in said["modules"].items():
        assert Path(path).is_relative_to(installed), f"{name} came from {path}, not from the installed wheel"


def test_the_api_app_builds_and_documents_the_builtin_workflows(run_installed, installed):
    said = python_says(run_installed, """
        from webapp import create_app
        client = create_app().test_client()
        answer = client.get("/openapi.json")
        said = {"status": answer.status_code, "paths": sorted(answer.get_json()["paths"])}
    """)
    assert_installed_copy(said, installed)
    assert said["status"] == 200
    assert {"/api/v1/camera-angle/jobs", "/api/v1/qwen-image-edit/jobs"} <= set(said["paths"])


def test_the_gpu_workers_start_up_checks_pass_on_a_comfyui(run_installed, installed, tmp_path):
    emulator = start_in_thread(EmulatorConfig(data_dir=tmp_path / "comfyui", port=0,
                                              model_files=builtin_folders()))
    try:
        said = python_says(run_installed, """
            from gpuorch.services import Services
            from gpuorch.settings import Settings
            from gpuorch.workflows.folders import BUILTIN_WORKFLOWS
            from workers.checks import template_problems
            services = Services(Settings.from_env())
            said = {"problems": template_problems(services), "workflows": sorted(w.name for w in services.workflows),
                    "builtin": str(BUILTIN_WORKFLOWS)}
        """, GPUORCH_COMFYUI_URL=emulator.url)
    finally:
        emulator.stop()
    assert_installed_copy(said, installed)
    assert said["problems"] == []
    assert said["workflows"] == sorted(p.name for p in BUILTIN_WORKFLOWS.iterdir() if p.is_dir())
    assert Path(said["builtin"]).is_relative_to(installed)


def test_the_workflows_check_command_passes_on_the_saved_catalogue(run_installed, installed):
    answer = run_installed([str(installed / "bin" / "gpuorch"), "workflows", "check", "--catalogue", str(CATALOGUE)])
    assert "from the built-in workflows" in answer.stdout
    assert {f"ok {name}" for name in ("camera-angle", "qwen-image-edit")} <= set(answer.stdout.splitlines())


def test_the_models_command_finds_the_model_files_the_builtin_workflows_declare(run_installed, installed):
    answer = run_installed([str(installed / "bin" / "gpuorch"), "models", "list", "--json"])
    declared = json.loads(answer.stdout)
    files = model_files(load_workflows(), ModelFiles())
    assert len(declared["files"]) == len(files) and declared["bytes"] > 30 * 10**9


def test_the_simulator_finds_its_reference_traces(run_installed, installed):
    said = python_says(run_installed, """
        from lifecycle.simulation.workload import REFERENCE_TRACES, read_trace, reference_trace_path
        said = {name: [str(reference_trace_path(name)), len(read_trace(reference_trace_path(name)))]
                for name in REFERENCE_TRACES}
    """)
    assert_installed_copy(said, installed)
    for name in REFERENCE_TRACES:
        path, jobs = said[name]
        assert Path(path).is_relative_to(installed) and jobs > 0
