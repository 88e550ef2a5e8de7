"""Build a Go program once per version into the cache; a binary named by the environment or on PATH wins."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_existing(binary: str, env_var: str) -> Path | None:
    """The binary the user chose: `$ENV_VAR` first, then PATH."""
    named = os.environ.get(env_var, "")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"{env_var}={named} does not exist")
        return path
    on_path = shutil.which(binary)
    return Path(on_path) if on_path else None


def go_install(cache_root: Path, package: str, version: str, binary: str, slot: str) -> Path:
    """`go install package@version` into `cache_root/slot/`, unless that slot already holds the binary."""
    target = cache_root / slot / binary
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build into a scratch dir and move in one step, so an interrupted build never looks finished.
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        env = {**os.environ, "GOBIN": scratch, "GOFLAGS": "-trimpath", "CGO_ENABLED": "0"}
        subprocess.run(["go", "install", f"{package}@{version}"], env=env, check=True)
        os.replace(Path(scratch) / binary, target)
    return target
