"""The Temporal CLI dev server: a real Temporal server with SQLite persistence and the Web UI."""

from __future__ import annotations

import json
from pathlib import Path

from devstack.gobuild import find_existing, go_install
from jobstream.search_attributes import SEARCH_ATTRIBUTE_TYPES
from jobstream.settings import Settings

# v1.6+ carry a `replace` directive in go.mod that `go install module@version` refuses.
TEMPORAL_CLI_VERSION = "1.5.1"

# The dev server's defaults throttle a single-shard, single-node server that has nothing to protect:
DEV_SERVER_CONFIG: dict[str, object] = {
    # The transfer queue (activity and workflow task dispatch) and the visibility queue load at most 20 times a
    # second with a burst of 20 on the one shard: under load every dispatch queued behind that limiter.
    "history.transferProcessorMaxPollRPS": 1000,
    "history.visibilityProcessorMaxPollRPS": 1000,
    # The CLI turns this on so search attributes created at runtime are visible at once; ours are created with
    # the namespace (--search-attribute), and on every read it re-loaded them from SQLite under a global lock.
    "system.forceSearchAttributesCacheRefreshOnRead": False,
    # Four partitions per task queue spread one worker's pollers and tasks over four queues for no gain here:
    # a task could land on a partition with no waiting poller and wait for the forwarder.
    "matching.numTaskqueueReadPartitions": 1,
    "matching.numTaskqueueWritePartitions": 1,
    # Every job carries its tenant as its fairness key: a queue's backlog is dispatched round-robin between
    # tenants (by weight), so one tenant's backlog cannot push another's jobs past schedule-to-start.
    "matching.enableFairness": True,
}


def install(cache_root: Path) -> Path:
    existing = find_existing("temporal", "JOBSTREAM_TEMPORAL_BIN")
    if existing:
        return existing
    return go_install(
        cache_root,
        "github.com/temporalio/cli/cmd/temporal",
        f"v{TEMPORAL_CLI_VERSION}",
        "temporal",
        f"temporal-{TEMPORAL_CLI_VERSION}",
    )


def command(binary: Path, settings: Settings) -> list[str]:
    db = settings.state_dir / "temporal" / "temporal.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        "server",
        "start-dev",
        "--ip",
        settings.host,
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str(db),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
    ]
    for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    for key, value in dynamic_config(settings).items():
        argv += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    # SQLite's own defaults (rollback journal, synchronous=FULL) unless a setting asks for less durability.
    for pragma in filter(None, (p.strip() for p in settings.temporal_sqlite_pragmas.split(","))):
        argv += ["--sqlite-pragma", pragma]
    return argv


def dynamic_config(settings: Settings) -> dict[str, object]:
    """The stack's dynamic config with the setting's overrides (a null value drops a key)."""
    overrides = json.loads(settings.temporal_dynamic_config) if settings.temporal_dynamic_config else {}
    if not isinstance(overrides, dict):
        raise ValueError("JOBSTREAM_TEMPORAL_DYNAMIC_CONFIG must be a JSON object")
    merged = {**DEV_SERVER_CONFIG, **overrides}
    return {key: value for key, value in merged.items() if value is not None}
