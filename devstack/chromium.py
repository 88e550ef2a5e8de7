"""Debian's chromium, for the browser tests (Playwright drives it through `executable_path`; Playwright's own
browser download cannot work on these machines)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack.debian import apt_install

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
    try:
        apt_install(PACKAGE, "no chromium")
    except RuntimeError as exc:
        raise RuntimeError(f"{exc} or set {ENV_VAR}") from None
    found = find()
    if found is None:
        raise RuntimeError(f"apt installed {PACKAGE}, yet no chromium is on PATH")
    return found
