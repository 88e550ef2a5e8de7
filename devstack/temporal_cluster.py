"""Temporal's own server (`temporal-server`, its four services in one process per node) on PostgreSQL, for the
cluster profile (issue 19): built from source with the Go toolchain, only when the cluster is asked for, with
the SQL schema tool of the same version. The single-node stack keeps the CLI's dev server."""

from __future__ import annotations

from pathlib import Path

from devstack.gobuild import go_install

# The version docker-compose.yml's auto-setup image runs; the schemas are embedded in the tool.
TEMPORAL_SERVER_VERSION = "1.29.7"
SLOT = f"temporal-server-{TEMPORAL_SERVER_VERSION}"


def install(cache_root: Path) -> tuple[Path, Path]:
    """(server, sql tool) binaries, built into the cache once."""
    version = f"v{TEMPORAL_SERVER_VERSION}"
    server = go_install(cache_root, "go.temporal.io/server/cmd/server", version, "server", SLOT)
    sql_tool = go_install(cache_root, "go.temporal.io/server/cmd/tools/sql", version, "sql", SLOT)
    return server, sql_tool
