"""The layers hold: import-linter's contracts (setup.cfg [importlinter]) over the whole library."""

import configparser
import re
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO


def test_every_import_contract_is_kept():
    # In a process of its own: import-linter configures logging as it starts, which would silence other tests' logs.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint_imports), "--config", "setup.cfg", "--no-cache"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_part_of_the_library_sits_in_a_layer():
    # A module the layers contract does not name is checked by nothing: a new one must be placed in a layer.
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    named = set(re.split(r"[\s|:]+", config["importlinter:contract:layers"]["layers"])) - {""}
    parts = {f"gpuorch.{path.stem if path.suffix else path.name}" for path in (REPO / "gpuorch").iterdir()
             if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()}
    assert parts - named == set(), "place these in a layer of setup.cfg's [importlinter:contract:layers]"
    assert {"webapp", "workers", "lifecycle"} <= named
