"""Debian's chromium, for the browser tests (Playwright drives it through `executable_path`; Playwright's own
browser download cannot work on these machines)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ENV_VAR = "JOBSTREAM_CHROMIUM"
PACKAGE = "chromium"


def find() -> Path | None:
    named = os.environ.get(ENV_VAR)
    if named:
        return Path(named)
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


def install() -> Path:
    """The browser, installed with apt where it is missing (as root); otherwise a message naming the package."""
    found = find()
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(
            f"no chromium: install Debian's `{PACKAGE}` package (apt-get install {PACKAGE}) or set {ENV_VAR}"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_command = [apt, "install", "-y", "--no-install-recommends", PACKAGE]
    if subprocess.run(install_command, env=environment, capture_output=True).returncode != 0:
        # The package lists may be missing or stale on a fresh machine.
        subprocess.run([apt, "update"], env=environment, check=True, capture_output=True)
        subprocess.run(install_command, env=environment, check=True, capture_output=True)
    found = find()
    if found is None:
        raise RuntimeError(f"apt installed {PACKAGE}, yet no chromium is on PATH")
    return found
