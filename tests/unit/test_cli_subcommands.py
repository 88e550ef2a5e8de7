"""The dev subcommands reach `jobstream` through entry points, however the command is started."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobstream.settings import PROJECT_ROOT


@pytest.mark.parametrize(
    "command", [[sys.executable, "-m", "jobstream.cli"], [str(PROJECT_ROOT / ".venv/bin/jobstream")]]
)
def test_dev_subcommands_are_listed(command: list[str]) -> None:
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)
    assert done.returncode == 0, done.stderr
    for name in ("up", "reliability", "bench", "submit", "status"):
        assert name in done.stdout
