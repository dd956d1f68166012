"""The layers hold: import-linter's contracts (setup.cfg [importlinter]) over the whole library."""

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
