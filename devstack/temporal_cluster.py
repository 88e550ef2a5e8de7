"""Temporal's own server (`temporal-server`, its four services in one process per node) on PostgreSQL, for the
cluster profile (issue 19): built from source with the Go toolchain, only when the cluster is asked for, with
the SQL schema tool of the same version. The single-node stack keeps the CLI's dev server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

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


# Each node's ports, as offsets from its block's base: four services, each with its gRPC and membership port.
PORT_OFFSETS = {
    ("frontend", "grpcPort"): 0,
    ("frontend", "membershipPort"): 1,
    ("frontend", "httpPort"): 2,
    ("history", "grpcPort"): 3,
    ("history", "membershipPort"): 4,
    ("matching", "grpcPort"): 5,
    ("matching", "membershipPort"): 6,
    ("worker", "grpcPort"): 7,
    ("worker", "membershipPort"): 8,
}
PORTS_PER_NODE = 10
DATABASES = {"temporal": "postgresql/v12/temporal", "temporal_visibility": "postgresql/v12/visibility"}
# Fixed when the schema is first set up: more shards than history hosts, so a dead host's shards can move.
HISTORY_SHARDS = 8


def frontend_port(base: int) -> int:
    return base + PORT_OFFSETS[("frontend", "grpcPort")]


def node_config(host: str, base_port: int, pg_port: int, frontend_address: str) -> dict[str, object]:
    """One node's server config: all four services, on PostgreSQL; nodes find each other through the
    membership table in the database."""

    def store(database: str, conns: int) -> dict[str, object]:
        sql = {
            "pluginName": "postgres12",
            "databaseName": database,
            "connectAddr": f"{host}:{pg_port}",
            "connectProtocol": "tcp",
            "user": "postgres",
            "password": "",
            "maxConns": conns,
            "maxIdleConns": conns,
            "maxConnLifetime": "1h",
        }
        return {"sql": sql}

    services: dict[str, dict[str, object]] = {}
    for (service, port), offset in PORT_OFFSETS.items():
        rpc = services.setdefault(service, {"rpc": {"bindOnIP": host}})["rpc"]
        assert isinstance(rpc, dict)
        rpc[port] = base_port + offset
    return {
        "log": {"stdout": True, "level": "warn"},
        "persistence": {
            "defaultStore": "default",
            "visibilityStore": "visibility",
            "numHistoryShards": HISTORY_SHARDS,
            "datastores": {"default": store("temporal", 20), "visibility": store("temporal_visibility", 5)},
        },
        "global": {"membership": {"maxJoinDuration": "30s", "broadcastAddress": host}},
        "services": services,
        "clusterMetadata": {
            "enableGlobalNamespace": False,
            "failoverVersionIncrement": 10,
            "masterClusterName": "active",
            "currentClusterName": "active",
            "clusterInformation": {
                "active": {
                    "enabled": True,
                    "initialFailoverVersion": 1,
                    "rpcName": "frontend",
                    "rpcAddress": frontend_address,
                }
            },
        },
        "dcRedirectionPolicy": {"policy": "noop"},
        "archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}},
        "namespaceDefaults": {"archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}}},
    }


def write_node(root: Path, config: dict[str, object], dynamic_config: dict[str, object]) -> None:
    """`root/config/development.yaml` and the dynamic config beside it, for `server --root root start`."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    dynamic = {"filepath": str(root / "dynamicconfig.yaml"), "pollInterval": "10s"}
    whole = {**config, "dynamicConfigClient": dynamic}
    (root / "config" / "development.yaml").write_text(yaml.safe_dump(whole, sort_keys=False))
    entries = {key: [{"value": value}] for key, value in dynamic_config.items()}
    (root / "dynamicconfig.yaml").write_text(yaml.safe_dump(entries, sort_keys=False))


def node_command(server: Path, root: Path) -> list[str]:
    return [str(server), "--root", str(root), "--config", "config", "--env", "development", "--allow-no-auth", "start"]


def setup_schemas(sql_tool: Path, host: str, pg_port: int) -> None:
    """Both databases at the embedded schemas' latest version: created and set up once, updated every start
    (the tool applies only the versions a database lacks)."""
    for database, schema in DATABASES.items():
        base = [str(sql_tool), "--plugin", "postgres12", "--ep", host, "-p", str(pg_port), "-u", "postgres"]
        base += ["--db", database]
        created = subprocess.run([*base, "create-database"], capture_output=True, text=True)
        if created.returncode != 0 and "already exists" not in created.stdout + created.stderr:
            raise RuntimeError(f"creating {database} failed: {created.stdout}{created.stderr}")
        versioned = subprocess.run([*base, "setup-schema", "-v", "0.0"], capture_output=True, text=True)
        if versioned.returncode != 0 and "already exists" not in versioned.stdout + versioned.stderr:
            raise RuntimeError(f"setting up {database} failed: {versioned.stdout}{versioned.stderr}")
        subprocess.run([*base, "update-schema", "-s", schema], check=True, capture_output=True)
