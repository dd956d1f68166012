"""constraints.txt: one exact version for every library, within what setup.cfg and the dev tools allow, and used by
every install (make install, the release installer, the container image)."""

from __future__ import annotations

import configparser
import re
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.paths import REPO

CONSTRAINTS = REPO / "constraints.txt"
OUR_DISTRIBUTIONS = {"gpuorch", "gpuorch-dev"}


def pins() -> dict[str, str]:
    """Canonical name -> pinned version."""
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, equals, version = line.partition("==")
            assert equals and version, f"constraints.txt: {line!r} is not name==version"
            found[canonicalize_name(name)] = version
    return found


def declared_requirements() -> list[Requirement]:
    """What gpuorch (its install_requires and test extra) and its dev tools ask for."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    lines = setup["options"]["install_requires"].split("\n") + setup["options.extras_require"]["test"].split("\n")
    devtools = tomllib.loads((REPO / "devtools" / "pyproject.toml").read_text())["project"]["dependencies"]
    return [Requirement(line) for line in [*lines, *devtools] if line.strip()]


@pytest.mark.parametrize("requirement", [r for r in declared_requirements() if r.name not in OUR_DISTRIBUTIONS],
                         ids=str)
def test_every_declared_requirement_is_pinned_within_what_it_allows(requirement):
    version = pins().get(canonicalize_name(requirement.name))
    assert version is not None, f"{requirement.name} is not in constraints.txt: run `make constraints`"
    assert requirement.specifier.contains(version, prereleases=True), f"{requirement} does not allow {version}"


def test_nothing_of_our_own_is_pinned():
    assert not OUR_DISTRIBUTIONS & set(pins())


def test_this_environment_runs_the_pinned_versions():
    """make install installs with the constraints: every pinned library installed here has its pinned version."""
    wrong = {}
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a library of another platform or Python
        if installed != version:
            wrong[name] = (installed, version)
    assert wrong == {}, "installed, pinned: run `make install` again"


@pytest.mark.parametrize("path,pattern", [
    ("Makefile", r"pip install .*-c \$\(CONSTRAINTS\) -e \./devtools -e '\.\[test\]'"),
    ("configs/deploy/install-release.sh", r'pip install .*-c "\$release/constraints\.txt" -e "\$release"'),
    ("configs/deploy/Containerfile", r"pip install -c constraints\.txt -r /tmp/requirements\.txt"),
])
def test_every_install_uses_the_constraints(path, pattern):
    assert re.search(pattern, (REPO / path).read_text()), f"{path} installs without constraints.txt"
