"""The benchmark's pure parts without a stack: the table (and its "before" column), the dev server's flags,
SQLite's change counter, history counts, open-file limits and core pinning decisions, the plots."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")  # the bench dependency group
pytest.importorskip("psutil")

import psutil
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from bench import command, fanout, report, stack_info, writes
from bench.common import recorded_pids, row


def _stack(**changes: Any) -> dict[str, Any]:
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


KINDS = dict.fromkeys(writes.KINDS, 3.0)
SERIES: dict[str, dict[str, Any]] = {
    "4": {
        "streams": [1000],
        "delivered_per_s": [1.0],
        "p99_ms": [2.0],
        "cpu_percent": [3.0],
        "cpu_us_per_event": [4.0],
        "rss_mib": [5.0],
    },
    "7": {"ours_writes": [14.0, 15.5], "floor_writes": [6.0, None], "ours_history": KINDS, "floor_history": KINDS},
}


def _results(started: str, rows: dict[str, list[dict[str, Any]]], stack: dict[str, Any] | None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "mode": "full",
        "started": started,
        "duration_s": 400.0,
        "machine": {"cpus": 2, "load_before": 1.0, "load_after": 2.0},
        "figures": {
            key: {"title": f"Figure {key}", "rows": lines, "series": SERIES[key]} for key, lines in rows.items()
        },
    }
    if stack is not None:
        results["stack"] = stack
    return results


NOW = _results(
    "2026-02-02 10:00 UTC",
    {
        "4": [
            row("1000 streams / 50 jobs: latency p99", "ms", 120.0, 30.0, "1 stream on 1 job"),
            row("1000 streams / 50 jobs: bridge CPU per delivered event", "µs", 18.5, 40.0, "1 stream on 1 job"),
            row("5000 streams / 50 jobs: skipped", "", None, None, "", "the bridge's open-file limit is 1024"),
        ],
        "7": [row("write transactions per generate job (8 tokens), median", "", 14.0, 6.0, "floor")],
    },
    _stack(dynamic_config={"matching.numTaskqueueReadPartitions": "1"}),
)
BEFORE = _results(
    "2026-01-01 09:00 UTC",
    {"4": [row("1000 streams / 50 jobs: latency p99", "ms", 700.0, 25.0, "1 stream on 1 job")]},
    None,  # an older results.json, from before the stack section existed
)


def test_the_table_without_before_keeps_its_columns_and_names_the_stack() -> None:
    table = report.render_table(NOW)
    assert "| # | metric | ours | baseline | ratio |" in table
    assert (
        "Temporal dev server: dynamic config matching.numTaskqueueReadPartitions=1; "
        "SQLite journal_mode=delete (default), synchronous=full (default); 1 GPU worker (tinylm); bridge pid 13."
    ) in table
    p99 = "| 4 | Figure 4: 1000 streams / 50 jobs: latency p99 |"
    assert f"{p99} 120 ms | 30.0 ms (1 stream on 1 job) | 4.00x |" in table
    # A row this run could not measure shows why instead of a number.
    skipped = "| 4 | Figure 4: 5000 streams / 50 jobs: skipped |"
    assert f"{skipped} - (the bridge's open-file limit is 1024) | - | - |" in table


def test_the_before_column_holds_the_older_runs_value_of_the_same_row() -> None:
    table = report.render_table(NOW, BEFORE)
    assert "| # | metric | before | ours | baseline | ratio |" in table
    assert "| 4 | Figure 4: 1000 streams / 50 jobs: latency p99 | 700 ms | 120 ms |" in table
    # Rows the older run did not have: "-".
    assert "| 4 | Figure 4: 1000 streams / 50 jobs: bridge CPU per delivered event | - | 18.5 µs |" in table
    assert "| 7 | Figure 7: write transactions per generate job (8 tokens), median | - | 14 |" in table
    assert "Before: full run, 2026-01-01 09:00 UTC, 2 cores" in table
    assert "stack settings not recorded." in table


def test_write_puts_the_before_table_into_results_md(tmp_path: Path) -> None:
    table = report.write(NOW, tmp_path, BEFORE)
    assert "| before |" in (tmp_path / "results.md").read_text()
    assert table in (tmp_path / "results.md").read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["figures"]["4"]["rows"][2]["ours"] is None


def test_load_before_refuses_what_is_not_a_results_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(BEFORE))
    assert command.load_before(str(path))["started"] == "2026-01-01 09:00 UTC"
    path.write_text("[]")
    with pytest.raises(SystemExit, match=r"not a bench results\.json"):
        command.load_before(str(path))
    with pytest.raises(SystemExit, match="--before"):
        command.load_before(str(tmp_path / "missing.json"))


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
    stack = _stack(**flags, sqlite=stack_info.sqlite_settings(flags["sqlite_pragmas"]))
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
    stack = _stack(wal_header=True)
    assert stack_info.journal_mode(stack) == "wal"
    assert "(but the database file is in WAL mode)" in stack_info.summary_line(stack)
    assert "WAL" in writes.not_measurable(stack)
    assert stack_info.wal_header(tmp_path / "missing.db") is None


def test_the_change_counter_counts_committed_write_transactions(tmp_path: Path) -> None:
    db = tmp_path / "temporal.db"
    connection = sqlite3.connect(db, isolation_level=None)  # explicit transactions only
    connection.execute("CREATE TABLE t (x INTEGER)")
    first = writes.change_counter(db)
    for value in range(3):
        connection.execute("BEGIN")
        connection.execute("INSERT INTO t VALUES (?)", (value,))
        connection.execute("INSERT INTO t VALUES (?)", (value,))
        connection.execute("COMMIT")
    connection.execute("SELECT count(*) FROM t").fetchall()  # reads do not count
    connection.execute("BEGIN")
    connection.execute("INSERT INTO t VALUES (9)")
    connection.execute("ROLLBACK")  # nor do rolled-back transactions
    assert writes.counter_delta(first, writes.change_counter(db)) == 3
    connection.close()
    assert writes.counter_delta(2**32 - 2, 1) == 3  # the 32-bit counter wraps


def test_what_makes_the_counter_unusable() -> None:
    assert writes.not_measurable(_stack()) == ""
    assert "exclusive" in writes.not_measurable(_stack(sqlite_pragmas={"locking_mode": "EXCLUSIVE"}))
    assert "no Temporal database" in writes.not_measurable(_stack(temporal_db_exists=False))


def test_history_counts() -> None:
    types = [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_MARKER_RECORDED,
        EventType.EVENT_TYPE_MARKER_RECORDED,
        EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    ]
    counts = writes.history_counts(HistoryEvent(event_id=i + 1, event_type=t) for i, t in enumerate(types))
    assert counts == {
        "history events": 9,
        "workflow tasks completed": 2,
        "activity tasks": 1,
        "markers (local activities)": 2,
        "memo / search-attribute upserts": 2,
    }


def test_the_last_recorded_pid_wins() -> None:
    text = "temporal 10\nsse-bridge 20\ngpu-worker-tinylm 30\nsse-bridge 21\n\nbroken line\n"
    assert recorded_pids(text) == {"temporal": 10, "sse-bridge": 21, "gpu-worker-tinylm": 30}


def test_open_file_limits_decide_which_levels_run() -> None:
    limits = (
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        "Max open files            1024                 524288               files     \n"
    )
    assert fanout.parse_nofile(limits) == 1024
    assert fanout.parse_nofile(limits.replace(" 1024 ", " unlimited ")) == float("inf")
    assert fanout.parse_nofile("nothing") is None
    assert fanout.skip_reason(1000, own_limit=524288, bridge_limit=1024) != ""
    assert "bridge" in fanout.skip_reason(1000, own_limit=524288, bridge_limit=1024)
    assert fanout.skip_reason(1000, own_limit=524288, bridge_limit=None) == ""  # unknown: try
    assert "this process" in fanout.skip_reason(5000, own_limit=4096, bridge_limit=float("inf"))
    assert fanout.skip_reason(5000, own_limit=65536, bridge_limit=65536) == ""


def test_the_soft_limit_is_raised_for_the_figure_and_restored() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    with fanout.raised_nofile() as raised:
        assert raised >= before[0]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


def test_the_bridge_gets_the_last_core_and_the_load_generator_the_rest() -> None:
    assert fanout.split_cores({0}) is None
    assert fanout.split_cores({3, 1}) == (3, [1])
    assert fanout.split_cores(range(4)) == (3, [0, 1, 2])


def test_the_writes_and_fanout_plots(tmp_path: Path) -> None:
    series = SERIES["7"]
    report.plot_all({"figures": {"7": {"series": series}, "4": {"series": SERIES["4"]}}}, tmp_path)
    assert (tmp_path / "7-writes.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "4-fanout.png").read_bytes().startswith(b"\x89PNG")
    # Not measurable (WAL): no bars, a plot all the same.
    report.plot_all({"figures": {"7": {"series": series | {"ours_writes": [None], "floor_writes": [None]}}}}, tmp_path)
    assert (tmp_path / "7-writes.png").exists()


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


def test_pinning_moves_every_thread_and_restores_them() -> None:
    # A stand-in for the bridge with a second thread: affinity is per thread, so both must move.
    script = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); time.sleep(30)"
    bridge = subprocess.Popen([sys.executable, "-c", script])
    try:
        process = psutil.Process(bridge.pid)
        deadline = time.monotonic() + 10
        while len(process.threads()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        allowed = os.sched_getaffinity(0)
        with fanout.pinned(bridge.pid) as pinning:
            if len(allowed) < 2:
                assert pinning["pinned"] is False
            else:
                assert pinning["pinned"] is True
                assert {pinning["bridge_core"], *pinning["load_generator_cores"]} == allowed
                assert all(os.sched_getaffinity(t.id) == {pinning["bridge_core"]} for t in process.threads())
                assert os.sched_getaffinity(0) == set(pinning["load_generator_cores"])
        assert all(os.sched_getaffinity(t.id) == allowed for t in process.threads())
        assert os.sched_getaffinity(0) == allowed
    finally:
        bridge.kill()
        bridge.wait()
