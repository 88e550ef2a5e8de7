"""Figure 7: durable write transactions per `generate` job, counted in the Temporal dev server's SQLite file.

In rollback-journal mode (SQLite's default) every committed write transaction increments the database
header's 4-byte big-endian "file change counter" at byte offset 24, so reading those 4 bytes of
STATE_DIR/temporal/temporal.db before and after a job counts the server's commits for it without
touching the server. Method: wait until no job is running; read the counter, wait a few seconds, read
it again: the idle rate (the server's own background writes, with this process's worker polling).
Then N `generate` jobs (8 tokens) one after another, each submitted, read over SSE to its terminal
event, awaited until its workflow closed and given a short settle for the writes that follow the close
(visibility), with the counter read before and after: its writes are the difference minus idle rate x
that duration; the figure is the median over the jobs (a background write landing in one job's window
moves one sample, not the median).

Not measurable, and reported as such, when the database is in WAL mode (commits go to the -wal file
and the counter is not incremented per transaction; the database header says WAL), with
locking_mode=exclusive (the counter is incremented once per lock, not per transaction) or when the
database file is not on this machine.

From each job's history (fetch_history): total events, workflow tasks completed, activity tasks,
markers (local activities) and memo / search-attribute upserts (WorkflowPropertiesModified,
UpsertWorkflowSearchAttributes): medians. Baseline, measured the same way between our jobs: a workflow
with one no-op activity and nothing else (bench/writes_workflow.py), the least durable work Temporal
does for any job on this server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.worker import Worker

from bench.common import Context, Figure, median, row
from bench.job_run import run_job
from bench.stack_info import describe, journal_mode
from bench.writes_workflow import TASK_QUEUE, OneActivityWorkflow, noop

PIPELINE = "generate"
MAX_TOKENS = 8
COUNTER_OFFSET = 24  # SQLite header: the file change counter, 4 bytes big-endian
FLOOR = "one-activity workflow (Temporal's floor)"

KINDS: dict[str, frozenset[EventType.ValueType] | None] = {
    "history events": None,  # every event
    "workflow tasks completed": frozenset({EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED}),
    "activity tasks": frozenset({EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}),
    "markers (local activities)": frozenset({EventType.EVENT_TYPE_MARKER_RECORDED}),
    "memo / search-attribute upserts": frozenset(
        {
            EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
            EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        }
    ),
}


@dataclass(frozen=True)
class Sizes:
    jobs: int
    idle_s: float  # the window the idle write rate is measured over
    settle_s: float  # after a workflow closed, for the writes that follow its close


def change_counter(db: Path) -> int:
    """The database header's file change counter (bytes 24-27, big-endian)."""
    with db.open("rb") as file:
        file.seek(COUNTER_OFFSET)
        raw = file.read(4)
    if len(raw) != 4:
        raise ValueError(f"{db}: no SQLite header")
    return int.from_bytes(raw, "big")


def counter_delta(before: int, after: int) -> int:
    """Commits between two reads; the 32-bit counter wraps."""
    return (after - before) % 2**32


def history_counts(events: Iterable[HistoryEvent]) -> dict[str, int]:
    counts = dict.fromkeys(KINDS, 0)
    for event in events:
        for kind, types in KINDS.items():
            if types is None or event.event_type in types:
                counts[kind] += 1
    return counts


def not_measurable(stack: dict[str, Any]) -> str:
    """Why the change counter does not count this server's commits ("" when it does)."""
    if not stack["temporal_db_exists"]:
        return f"no Temporal database at {stack['temporal_db']} (the stack runs elsewhere)"
    if journal_mode(stack) == "wal":
        return "SQLite runs in WAL mode: the change counter does not count WAL commits"
    if stack["sqlite_pragmas"].get("locking_mode", "normal").lower() == "exclusive":
        return "SQLite runs with locking_mode=exclusive: the change counter counts locks, not commits"
    return ""


@dataclass
class Sample:
    writes: float | None  # commits minus idle rate x duration; None when not measurable
    commits: int | None
    seconds: float
    history: dict[str, int]


async def _sample(
    ctx: Context, db: Path | None, idle_per_s: float, settle_s: float, go: Callable[[], Awaitable[str]]
) -> Sample:
    """Run one workflow (`go` returns its id once it has closed) between two counter reads."""
    before = change_counter(db) if db is not None else 0
    started = time.monotonic()
    workflow_id = await go()
    await asyncio.sleep(settle_s)
    after = change_counter(db) if db is not None else 0
    seconds = time.monotonic() - started
    # Reading history is a read, but it stays outside the counted window all the same.
    history = await ctx.temporal.get_workflow_handle(workflow_id).fetch_history()
    if db is None:
        return Sample(None, None, seconds, history_counts(history.events))
    commits = counter_delta(before, after)
    return Sample(commits - idle_per_s * seconds, commits, seconds, history_counts(history.events))


async def run(ctx: Context, sizes: Sizes) -> Figure:
    stack = describe(ctx.settings)
    reason = not_measurable(stack)
    db = None if reason else Path(stack["temporal_db"])

    async def job() -> str:
        run = await run_job(ctx, PIPELINE, MAX_TOKENS)
        # The terminal event is published before the workflow's last task: its close writes come after.
        await ctx.temporal.get_workflow_handle(run.job_id).result()
        return run.job_id

    async def floor() -> str:
        workflow_id = f"bench-writes-{uuid.uuid4().hex}"
        await ctx.temporal.execute_workflow(OneActivityWorkflow.run, id=workflow_id, task_queue=TASK_QUEUE)
        return workflow_id

    ours: list[Sample] = []
    floors: list[Sample] = []
    idle_per_s = 0.0
    async with Worker(ctx.temporal, task_queue=TASK_QUEUE, workflows=[OneActivityWorkflow], activities=[noop]):
        await floor()  # the task queue's first use writes its metadata: not part of any sample
        await ctx.drain(30.0)
        if db is not None:
            before = change_counter(db)
            started = time.monotonic()
            await asyncio.sleep(sizes.idle_s)
            idle_per_s = counter_delta(before, change_counter(db)) / (time.monotonic() - started)
        # Alternating, so both see the same server (its caches, its background work).
        for _ in range(sizes.jobs):
            ours.append(await _sample(ctx, db, idle_per_s, sizes.settle_s, job))
            floors.append(await _sample(ctx, db, idle_per_s, sizes.settle_s, floor))

    def med(samples: list[Sample]) -> float | None:
        values = [s.writes for s in samples if s.writes is not None]
        return median(values) if values else None

    label = f"write transactions per {PIPELINE} job ({MAX_TOKENS} tokens), median"
    note = f"not measurable: {reason}" if reason else ""
    rows = [
        row(label, "", med(ours), med(floors), FLOOR, note),
        row("  idle write transactions (subtracted)", "1/s", None if reason else idle_per_s, None, "", note),
    ]
    for kind in KINDS:
        mine = median([float(s.history[kind]) for s in ours])
        theirs = median([float(s.history[kind]) for s in floors])
        rows.append(row(f"{kind} per job, median", "events", mine, theirs, FLOOR))
    mode = journal_mode(stack)
    measured: dict[str, Any] = {
        "journal_mode": mode,
        "journal_mode_default": bool(stack["sqlite"]["journal_mode"]["default"]) and mode != "wal",
        "measurable": not reason,
        "reason": reason,
        "database": stack["temporal_db"],
        "idle_write_transactions_per_s": idle_per_s if not reason else None,
        "idle_s": sizes.idle_s,
        "settle_s": sizes.settle_s,
        "jobs": [s.__dict__ for s in ours],
        "floor": [s.__dict__ for s in floors],
    }
    return {
        "title": "Durable writes per job",
        "method": __doc__,
        "rows": rows,
        "measured": measured,
        "series": {
            "ours_writes": [s.writes for s in ours],
            "floor_writes": [s.writes for s in floors],
            "ours_history": {kind: median([float(s.history[kind]) for s in ours]) for kind in KINDS},
            "floor_history": {kind: median([float(s.history[kind]) for s in floors]) for kind in KINDS},
        },
    }
