"""Temporal's own floor for the trip a job makes before its model stage, measured in the same run on the same
server: a minimal workflow whose first command schedules one activity on another worker's queue, from the
start_workflow call to that activity's start (its ActivityTaskStarted time in the history, as figure 2 reads
the model stage's). Both workers run in the benchmark's process (the job's run in their own processes): the
floor is what Temporal and its Python SDK need for that trip, with nothing of jobstream's in it."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from bench.history import activity_spans, first_trip_split

WORKFLOW_QUEUE = "jobstream-bench-floor"
ACTIVITY_QUEUE = "jobstream-bench-floor-activity"


FLOOR_ACTIVITY = "bench_floor_activity"


@activity.defn(name=FLOOR_ACTIVITY)
async def floor_activity() -> None:
    return None


@workflow.defn(name="BenchTemporalFloor")
class FloorWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            floor_activity, task_queue=ACTIVITY_QUEUE, start_to_close_timeout=timedelta(seconds=30)
        )


@contextlib.asynccontextmanager
async def floor_workers(client: Client) -> AsyncIterator[None]:
    """A workflow worker and, apart from it, an activity worker (as the job's model stage runs on a GPU worker)."""
    async with (
        Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[FloorWorkflow]),
        Worker(client, task_queue=ACTIVITY_QUEUE, activities=[floor_activity]),
    ):
        yield


@dataclass(frozen=True)
class FloorTrip:
    seconds: float  # from the start_workflow call to the activity's start
    split: dict[str, float]  # the history's segments of it (bench.history.FIRST_TRIP), seconds


async def floor_trip(client: Client) -> FloorTrip:
    """One start_workflow call to its activity's start."""
    called = time.time()
    handle = await client.start_workflow(
        FloorWorkflow.run, id=f"bench-floor-{uuid.uuid4().hex}", task_queue=WORKFLOW_QUEUE
    )
    await handle.result()
    history = await handle.fetch_history()
    (span,) = activity_spans(history)
    assert span.started is not None
    return FloorTrip(span.started - called, first_trip_split(history, FLOOR_ACTIVITY))
