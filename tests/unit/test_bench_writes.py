"""Figure 7's write counting without a stack: SQLite's change counter, what makes it unusable, and the counts
of a workflow history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")  # the bench dependency group
pytest.importorskip("psutil")

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from bench import writes
from tests.unit.bench_samples import sample_stack


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
    assert writes.not_measurable(sample_stack()) == ""
    assert "exclusive" in writes.not_measurable(sample_stack(sqlite_pragmas={"locking_mode": "EXCLUSIVE"}))
    assert "no Temporal database" in writes.not_measurable(sample_stack(temporal_db_exists=False))


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
