"""What the benchmark records of the stack it measured, without a stack: the dev server's flags (and where it
hides behind a wrapper), a database left in WAL mode, the pids the supervisor recorded."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")  # the bench dependency group
pytest.importorskip("psutil")

from bench import stack_info, writes
from bench.common import recorded_pids
from tests.unit.bench_samples import sample_stack


def test_the_dev_servers_flags_in_both_spellings() -> None:
    argv = [
        "temporal",
        "server",
        "start-dev",
        "--dynamic-config-value",
        "frontend.enableUpdateWorkflowExecution=true",
        "--dynamic-config-value=history.cacheSize=2048",
        "--sqlite-pragma",
        "journal_mode=WAL",
        "--sqlite-pragma=busy_timeout=5000",
        "--log-level",
        "warn",
    ]
    flags = stack_info.temporal_flags(argv)
    assert flags["dynamic_config"] == {"frontend.enableUpdateWorkflowExecution": "true", "history.cacheSize": "2048"}
    assert flags["sqlite_pragmas"] == {"journal_mode": "WAL", "busy_timeout": "5000"}
    stack = sample_stack(**flags, sqlite=stack_info.sqlite_settings(flags["sqlite_pragmas"]))
    assert stack_info.journal_mode(stack) == "wal"
    line = stack_info.summary_line(stack)
    assert "SQLite journal_mode=wal, synchronous=full (default), busy_timeout=5000" in line


def test_a_database_left_in_wal_mode_is_wal_whatever_the_flags(tmp_path: Path) -> None:
    db = tmp_path / "temporal.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    connection.close()
    assert stack_info.wal_header(db) is False
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode=wal")
    connection.close()
    assert stack_info.wal_header(db) is True
    stack = sample_stack(wal_header=True)
    assert stack_info.journal_mode(stack) == "wal"
    assert "(but the database file is in WAL mode)" in stack_info.summary_line(stack)
    assert "WAL" in writes.not_measurable(stack)
    assert stack_info.wal_header(tmp_path / "missing.db") is None


def test_the_last_recorded_pid_wins() -> None:
    text = "temporal 10\nsse-bridge 20\ngpu-worker-tinylm 30\nsse-bridge 21\n\nbroken line\n"
    assert recorded_pids(text) == {"temporal": 10, "sse-bridge": 21, "gpu-worker-tinylm": 30}


def test_the_dev_server_is_found_behind_a_wrapper() -> None:
    # The supervisor may record a shell (or any wrapper) whose child is the real `temporal server start-dev`.
    sleeper = f"{sys.executable} -c 'import time; time.sleep(30)' server start-dev --sqlite-pragma journal_mode=wal"
    wrapper = subprocess.Popen(["sh", "-c", f"{sleeper} & wait"])
    try:
        deadline = time.monotonic() + 10
        found = None
        while found is None and time.monotonic() < deadline:
            found = stack_info.find_temporal(wrapper.pid)
            time.sleep(0.05)
        assert found is not None
        assert found.pid != wrapper.pid
        assert stack_info.temporal_flags(found.cmdline())["sqlite_pragmas"] == {"journal_mode": "wal"}
        found.kill()
    finally:
        wrapper.kill()
        wrapper.wait()
    assert stack_info.find_temporal(wrapper.pid) is None
