"""The dev subcommands reach `jobstream` through entry points, however the command is started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_without_a_key_the_cli_says_so_and_creates_none(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "JOBSTREAM_API_KEY"}
    environment["JOBSTREAM_STATE_DIR"] = str(tmp_path)
    for command in (["api-key"], ["status", "job_" + "a" * 26]):
        done = subprocess.run(
            [sys.executable, "-m", "jobstream.cli", *command],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            env=environment,
            check=False,
        )
        assert done.returncode != 0
        assert "JOBSTREAM_API_KEY" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no keys file appeared
