"""The Temporal CLI dev server: a real Temporal server with SQLite persistence and the Web UI."""

from __future__ import annotations

from pathlib import Path

from devstack.gobuild import find_existing, go_install
from jobstream.search_attributes import SEARCH_ATTRIBUTE_TYPES
from jobstream.settings import Settings

# v1.6+ carry a `replace` directive in go.mod that `go install module@version` refuses.
TEMPORAL_CLI_VERSION = "1.5.1"


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
    return argv
