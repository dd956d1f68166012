"""One error tree: every exception class of the shipped library derives from GpuorchError, sits on one branch (or
in a family of its own), and the tree drawn in gpuorch.errors' docstring names it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import gpuorch.errors
from tests.paths import REPO

BRANCHES = {"RequestRefused", "AdmissionRefused", "JobOutcome", "Conflict", "Unavailable", "ConfigurationError"}
# Family bases: each member also derives from the branch that gives its meaning, or from none of them.
FAMILIES = {"ComfyError", "InputError"}

# Run in a child process: some modules are entry points whose import acts (webapp.wsgi builds the app and sets
# up logging, webapp.gunicorn_conf turns on multiprocess metrics), which must not leak into the tests after this.
WALK = """
import importlib, inspect, json, pkgutil
found = {}
for name in ("gpuorch", "lifecycle", "webapp", "workers"):
    package = importlib.import_module(name)
    modules = [package] + [importlib.import_module(m.name)
                           for m in pkgutil.walk_packages(package.__path__, prefix=name + ".")]
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = [base.__name__ for base in cls.__mro__]
print(json.dumps(found))
"""


def exception_classes() -> dict[str, list[str]]:
    """Every exception class a module of the library defines (not those it imports), with its MRO's names."""
    walked = subprocess.run([sys.executable, "-c", WALK], cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=True)
    return json.loads(walked.stdout.splitlines()[-1])


CLASSES = exception_classes()


def test_the_walk_found_the_library_errors():
    assert {"gpuorch.errors.GpuorchError", "gpuorch.jobs.store.TransitionRefused", "webapp.errors.ApiError",
            "lifecycle.live.pool.Ec2Unavailable"} <= set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_exception_class_is_in_the_tree(name):
    assert "GpuorchError" in CLASSES[name], f"{name} is outside the tree: {CLASSES[name]}"


@pytest.mark.parametrize("name", sorted(n for n, mro in CLASSES.items() if mro[0] != "GpuorchError"
                                        and mro[0] not in BRANCHES))
def test_every_error_is_on_one_branch_or_in_a_family(name):
    mro = CLASSES[name]
    branches = BRANCHES.intersection(mro)
    assert len(branches) == 1 or (not branches and FAMILIES.intersection(mro)), (name, mro)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_the_drawn_tree_names_every_class(name):
    assert CLASSES[name][0] in gpuorch.errors.__doc__
