"""buf (Protobuf linter and formatter), from the `@bufbuild/buf` npm package, cached by version.

`JOBSTREAM_BUF` (a path to the binary) or a `buf` on PATH wins over the cached install. The cached
`buf` is the npm package's launcher script, so it needs `node` on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from devstack.gobuild import find_existing

BUF_VERSION = "1.75.0"
BUF_NPM_PACKAGE = "@bufbuild/buf"
ENV_VAR = "JOBSTREAM_BUF"


def cached_path(cache_root: Path) -> Path:
    """Where `install` puts buf: `<cache_root>/buf-<version>/node_modules/.bin/buf`."""
    return cache_root / f"buf-{BUF_VERSION}" / "node_modules" / ".bin" / "buf"


def find(cache_root: Path) -> Path | None:
    """The buf to use without installing anything: `$JOBSTREAM_BUF`, then PATH, then the cache."""
    existing = find_existing("buf", ENV_VAR)
    if existing is not None:
        return existing
    cached = cached_path(cache_root)
    return cached if cached.is_file() else None


def install(cache_root: Path) -> Path:
    """Return the buf binary to use, installing it from npm into the cache on first use (idempotent)."""
    found = find(cache_root)
    if found is not None:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError(
            f"npm is not on PATH: install Node.js (buf comes from the {BUF_NPM_PACKAGE} npm package) "
            f"or set {ENV_VAR} to a buf binary"
        )
    target = cached_path(cache_root)
    slot = target.parents[2]
    cache_root.mkdir(parents=True, exist_ok=True)
    # Install into a scratch dir and move it in one step, so an interrupted install never looks
    # finished. npm's links under node_modules/.bin are relative, so the move keeps them valid.
    scratch = Path(tempfile.mkdtemp(prefix=f".{slot.name}-", dir=cache_root))
    scratch.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any install
    try:
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(scratch),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"{BUF_NPM_PACKAGE}@{BUF_VERSION}",
            ],
            check=True,
        )
        built = scratch / target.relative_to(slot)
        reported = subprocess.run([str(built), "--version"], check=True, capture_output=True, text=True).stdout.strip()
        if reported != BUF_VERSION:
            raise RuntimeError(f"{built} reports version {reported!r}, expected {BUF_VERSION}")
        if slot.exists():  # left behind without its binary; replace it
            shutil.rmtree(slot)
        os.replace(scratch, slot)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
