"""Which stack a run measured: the Temporal dev server's settings, its SQLite journal mode, the workers.

The dev server's `--dynamic-config-value` and `--sqlite-pragma` flags move every Temporal-bound figure
(WAL alone moved throughput 1.7x), so a table without them cannot be compared with another. They are
read from the running server's command line (/proc/PID/cmdline via psutil), not from the code that
starts it: the stack under test may have been started by another checkout or by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.common import pids_file, recorded_pids
from devstack.cluster import ClusterLayout
from devstack.cluster_endpoints import Endpoints
from devstack.temporal_cluster import TEMPORAL_SERVER_VERSION
from jobstream.settings import Settings, get_settings

# SQLite's compiled-in defaults, which a missing --sqlite-pragma leaves in force.
SQLITE_DEFAULTS = {"journal_mode": "delete", "synchronous": "full"}
FLAGS = {"--dynamic-config-value": "dynamic_config", "--sqlite-pragma": "sqlite_pragmas"}


def temporal_flags(argv: Sequence[str]) -> dict[str, dict[str, str]]:
    """Every `--dynamic-config-value K=V` and `--sqlite-pragma K=V` (or `--flag=K=V`) of a command line.

    A key given twice keeps its last value, as the CLI's repeated flags do.
    """
    found: dict[str, dict[str, str]] = {"dynamic_config": {}, "sqlite_pragmas": {}}
    index = 0
    while index < len(argv):
        arg = argv[index]
        flag, equals, inline = arg.partition("=")
        if flag in FLAGS:
            if equals:
                value = inline
            elif index + 1 < len(argv):
                index += 1
                value = argv[index]
            else:
                value = ""
            key, _, setting = value.partition("=")
            if key:
                found[FLAGS[flag]][key.strip()] = setting.strip()
        index += 1
    return found


def sqlite_settings(pragmas: dict[str, str]) -> dict[str, dict[str, Any]]:
    """journal_mode and synchronous as the server runs them: the pragma given, else SQLite's default."""
    settings: dict[str, dict[str, Any]] = {}
    for name, default in SQLITE_DEFAULTS.items():
        given = pragmas.get(name)
        settings[name] = {"value": (given or default).lower(), "default": given is None}
    return settings


def find_temporal(recorded: int) -> psutil.Process | None:
    """The `temporal server start-dev` process: the recorded pid, or (if the supervisor recorded a
    wrapper, e.g. a shell) the first of its descendants whose argv says start-dev."""
    try:
        root = psutil.Process(recorded)
        for process in [root, *root.children(recursive=True)]:
            try:
                if "start-dev" in process.cmdline():
                    return process
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return None


def describe(settings: Settings) -> dict[str, Any]:
    """The stack section of results.json (every key present, None where it could not be read)."""
    db = settings.state_dir / "temporal" / "temporal.db"
    info: dict[str, Any] = {
        "temporal_pid": None,
        "temporal_argv": None,
        "dynamic_config": {},
        "sqlite_pragmas": {},
        "sqlite": sqlite_settings({}),
        "temporal_db": str(db),
        "temporal_db_exists": db.exists(),
        "wal_file_exists": Path(f"{db}-wal").exists(),
        "wal_header": wal_header(db),
        "gpu_workers": {},
        "bridge_pid": None,
    }
    try:
        pids = recorded_pids(pids_file(settings).read_text())
    except OSError:
        return info
    live = {name: pid for name, pid in pids.items() if psutil.pid_exists(pid)}  # a stopped stack leaves its file
    info["gpu_workers"] = {name: pid for name, pid in live.items() if name.startswith("gpu-worker-")}
    info["bridge_pid"] = live.get("sse-bridge")
    if "temporal" in pids:
        temporal = find_temporal(pids["temporal"])
        if temporal is not None:
            with_flags = temporal.cmdline()
            info["temporal_pid"] = temporal.pid
            info["temporal_argv"] = with_flags
            info |= temporal_flags(with_flags)
            info["sqlite"] = sqlite_settings(info["sqlite_pragmas"])
    return info


def wal_header(db: Path) -> bool | None:
    """Whether the database file itself says WAL (header bytes 18 and 19, the write and read format
    versions, are 2 in WAL mode and 1 in rollback mode); None if it cannot be read.

    WAL mode is persistent in the file: a database once opened with journal_mode=wal stays WAL when a
    later server starts without the pragma, so the flags alone do not tell.
    """
    try:
        with db.open("rb") as file:
            header = file.read(20)
    except OSError:
        return None
    if len(header) < 20 or not header.startswith(b"SQLite format 3\x00"):
        return None
    return header[18] == 2 or header[19] == 2


def journal_mode(stack: dict[str, Any]) -> str:
    """The journal mode the server runs: WAL if the database header or a -wal file next to it says so,
    whatever the flags; otherwise what the flags (or SQLite's default) set."""
    if stack.get("wal_header") or stack.get("wal_file_exists"):
        return "wal"
    return str(stack.get("sqlite", {}).get("journal_mode", {}).get("value", SQLITE_DEFAULTS["journal_mode"]))


def describe_cluster(settings: Settings) -> dict[str, Any]:
    """The stack section of a cluster run: its servers, and the replicas that ran (from its endpoints file)."""
    endpoints = Endpoints.read(ClusterLayout.of(get_settings()).endpoints_file)
    return {
        "profile": "cluster",
        "servers": f"Temporal server {TEMPORAL_SERVER_VERSION} ({len(endpoints.temporal_nodes)} nodes) on "
        f"PostgreSQL 15; Kafka {len(settings.kafka_bootstrap.split(','))} nodes, events replicated "
        f"{settings.events_replication}x (acks=all, min.insync.replicas=2); MinIO 4 servers; an nginx edge (TLS)",
        "replicas": sorted(endpoints.processes),
    }


def summary_line(stack: dict[str, Any] | None) -> str:
    """One sentence for the table's header, e.g. "Temporal dev server: dynamic config a=b; SQLite
    journal_mode=delete (default), synchronous=full (default); 1 GPU worker; bridge pid 123"."""
    if not stack:
        return "stack settings not recorded"
    if stack.get("profile") == "cluster":
        services = [role for role in stack["replicas"] if role.startswith(("job-service", "sse-bridge", "gpu-worker"))]
        return f"cluster profile: {stack['servers']}; {', '.join(services)}"
    if stack.get("temporal_argv") is None:
        server = "Temporal dev server: command line not found (settings unknown)"
    else:
        dynamic = stack.get("dynamic_config") or {}
        config = ", ".join(f"{k}={v}" for k, v in dynamic.items()) if dynamic else "none"
        pragmas = []
        for name, setting in (stack.get("sqlite") or {}).items():
            pragmas.append(f"{name}={setting['value']}" + (" (default)" if setting["default"] else ""))
        others = {k: v for k, v in (stack.get("sqlite_pragmas") or {}).items() if k not in SQLITE_DEFAULTS}
        pragmas += [f"{k}={v}" for k, v in others.items()]
        server = f"Temporal dev server: dynamic config {config}; SQLite {', '.join(pragmas)}"
        configured = (stack.get("sqlite") or {}).get("journal_mode", {}).get("value")
        if journal_mode(stack) == "wal" and configured != "wal":
            server += " (but the database file is in WAL mode)"
    workers = sorted(name.removeprefix("gpu-worker-") for name in stack.get("gpu_workers") or {})
    count = f"{len(workers)} GPU worker{'s' if len(workers) != 1 else ''}"
    parts = [server, f"{count} ({', '.join(workers)})" if workers else count]
    if stack.get("bridge_pid") is not None:
        parts.append(f"bridge pid {stack['bridge_pid']}")
    return "; ".join(parts)
