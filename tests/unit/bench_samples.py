"""A recorded stack section of a bench results.json, as `jobstream bench` writes it, for the tests of what reads
one (the table's stack line, the journal mode, whether figure 7's counter can be used)."""

from __future__ import annotations

from typing import Any

from bench import stack_info


def sample_stack(**changes: Any) -> dict[str, Any]:
    """The stack facts of a dev server with its default flags, with `changes` over them."""
    stack: dict[str, Any] = {
        "temporal_pid": 11,
        "temporal_argv": ["temporal", "server", "start-dev"],
        "dynamic_config": {},
        "sqlite_pragmas": {},
        "sqlite": stack_info.sqlite_settings({}),
        "temporal_db": "/state/temporal/temporal.db",
        "temporal_db_exists": True,
        "wal_file_exists": False,
        "wal_header": False,
        "gpu_workers": {"gpu-worker-tinylm": 12},
        "bridge_pid": 13,
    }
    return stack | changes
