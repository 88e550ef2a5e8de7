"""Debian packages the project's scripts install where they are missing (as root, with apt)."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(package: str, missing: str) -> None:
    """Install `package`; RuntimeError saying `missing` and how to install it where apt cannot be used."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(f"{missing}: install Debian's `{package}` package (apt-get install {package})")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_command = [apt, "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install_command, env=environment, capture_output=True).returncode != 0:
        # The package lists may be missing or stale on a fresh machine.
        subprocess.run([apt, "update"], env=environment, check=True, capture_output=True)
        subprocess.run(install_command, env=environment, check=True, capture_output=True)
