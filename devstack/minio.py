"""MinIO, built from source with `go install` (MinIO's documented way to get the community edition)."""

from __future__ import annotations

from pathlib import Path

from devstack.gobuild import find_existing, go_install
from jobstream.settings import Settings

# MinIO tags are not semver; the Go proxy serves this commit as a pseudo-version.
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"


def install(cache_root: Path) -> Path:
    existing = find_existing("minio", "JOBSTREAM_MINIO_BIN")
    if existing:
        return existing
    slot = "minio-" + MINIO_VERSION.split("-")[1]
    return go_install(cache_root, "github.com/minio/minio", MINIO_VERSION, "minio", slot)


def command(binary: Path, settings: Settings) -> list[str]:
    data = settings.state_dir / "minio"
    data.mkdir(parents=True, exist_ok=True)
    return [
        str(binary),
        "server",
        str(data),
        "--address",
        settings.minio_endpoint,
        "--console-address",
        f"{settings.host}:{settings.minio_console_port}",
        "--quiet",
    ]


def environment(settings: Settings) -> dict[str, str]:
    return {
        "MINIO_ROOT_USER": settings.minio_root_user,
        "MINIO_ROOT_PASSWORD": settings.minio_root_password,
        "MINIO_BROWSER": "on",
        # No phoning home: this machine has no route out, and waiting on it slows start-up.
        "MINIO_UPDATE": "off",
        "MINIO_CALLHOME_ENABLE": "off",
    }


def node_command(binary: Path, host: str, port: int, console_port: int, drives: list[str]) -> list[str]:
    """One server of a distributed MinIO: every process is given all the drives (`http://host:port/path`) and
    serves the one at its own address; together they erasure-code each object across them."""
    return [
        str(binary),
        "server",
        "--address",
        f"{host}:{port}",
        "--console-address",
        f"{host}:{console_port}",
        "--quiet",
        *drives,
    ]


def cluster_environment(settings: Settings, address: str) -> dict[str, str]:
    """For the server at `address`. The cluster's drives share one root filesystem, which MinIO refuses outside
    CI mode: the profile sets it itself rather than rely on whoever started it. In a container (/.dockerenv)
    MinIO waits for a loopback host to resolve elsewhere, unless told which endpoint is its own."""
    own = {"_MINIO_SERVER_LOCAL": address}
    return {**environment(settings), "MINIO_CI_CD": "on", "MINIO_BROWSER": "off", **own}
