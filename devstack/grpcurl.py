"""grpcurl, the command-line gRPC client, built with `go install` and cached by version.

`JOBSTREAM_GRPCURL` (a path to the binary) or a `grpcurl` on PATH wins over the cached build.
"""

from __future__ import annotations

from pathlib import Path

from devstack.gobuild import find_existing, go_install

GRPCURL_VERSION = "1.9.4"
GRPCURL_PACKAGE = "github.com/fullstorydev/grpcurl/cmd/grpcurl"
ENV_VAR = "JOBSTREAM_GRPCURL"


def cached_path(cache_root: Path) -> Path:
    """Where `install` puts the binary: `<cache_root>/grpcurl-<version>/grpcurl`."""
    return cache_root / f"grpcurl-{GRPCURL_VERSION}" / "grpcurl"


def install(cache_root: Path) -> Path:
    """Return the grpcurl binary to use, building it into the cache on first use (idempotent)."""
    existing = find_existing("grpcurl", ENV_VAR)
    if existing is not None:
        return existing
    slot = cached_path(cache_root).parent.name
    return go_install(cache_root, GRPCURL_PACKAGE, f"v{GRPCURL_VERSION}", "grpcurl", slot)
