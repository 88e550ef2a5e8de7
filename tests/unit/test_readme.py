"""The README's promises that code can check: its settings table is current and its commands exist."""

from __future__ import annotations

from devstack import settings_table
from jobstream.settings import PROJECT_ROOT


def test_settings_table_is_current() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert settings_table.render() in readme, "run `python -m devstack.settings_table` to refresh README.md"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()
