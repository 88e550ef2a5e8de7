"""Debian packages the project's scripts install where they are missing (as root, with apt)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# Debian's maintainer scripts ask this whether they may start the services they install (exit 101: no).
POLICY = Path("/usr/sbin/policy-rc.d")


def apt_install(package: str, missing: str) -> None:
    """Install `package`; RuntimeError saying `missing` and how to install it where apt cannot be used."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(f"{missing}: install Debian's `{package}` package (apt-get install {package})")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_command = [apt, "install", "-y", "--no-install-recommends", package]
    with _services_not_started():
        if subprocess.run(install_command, env=environment, capture_output=True).returncode != 0:
            # The package lists may be missing or stale on a fresh machine.
            subprocess.run([apt, "update"], env=environment, check=True, capture_output=True)
            subprocess.run(install_command, env=environment, check=True, capture_output=True)


@contextlib.contextmanager
def _services_not_started() -> Iterator[None]:
    """The project runs these servers itself on its own ports: the packages must not start theirs (nginx on
    port 80, a PostgreSQL cluster on 5432) as system services."""
    if POLICY.exists():
        yield
        return
    POLICY.write_text("#!/bin/sh\nexit 101\n")
    POLICY.chmod(0o755)
    try:
        yield
    finally:
        POLICY.unlink()
