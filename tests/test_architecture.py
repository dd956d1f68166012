"""The layers hold: import-linter's contracts (setup.cfg [importlinter]) over the whole library."""

from importlinter.cli import lint_imports

from tests.paths import REPO


def test_every_import_contract_is_kept(monkeypatch):
    monkeypatch.chdir(REPO)
    assert lint_imports(config_filename=str(REPO / "setup.cfg"), no_cache=True, no_logo=True) == 0
