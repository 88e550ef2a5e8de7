"""Helm, the Kubernetes package manager, built with `go install` and cached by version: the chart's tests
render and lint deploy/helm/jobstream with it (nothing here talks to a cluster).

`JOBSTREAM_HELM` (a path to the binary) or a `helm` on PATH wins over the cached build.
"""

from __future__ import annotations

from pathlib import Path

from devstack.gobuild import find_existing, go_install

HELM_VERSION = "4.3.2"
HELM_PACKAGE = "helm.sh/helm/v4/cmd/helm"
ENV_VAR = "JOBSTREAM_HELM"


def install(cache_root: Path) -> Path:
    """The helm binary to use, built into `<cache_root>/helm-<version>/` on first use (idempotent)."""
    existing = find_existing("helm", ENV_VAR)
    if existing is not None:
        return existing
    return go_install(cache_root, HELM_PACKAGE, f"v{HELM_VERSION}", "helm", f"helm-{HELM_VERSION}")
