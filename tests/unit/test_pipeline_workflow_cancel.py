"""PipelineWorkflow's cancellation against a real Temporal dev server with every activity mocked: a cancel
before the workflow first runs, before a stage starts, during a remote or a local stage, one that a stage misses,
and a model stage that stops and reports what it delivered; each ends the job CANCELLED with job.cancelled.

The dev server is the `client` fixture (tests/unit/conftest.py); the job harness and the mocked activities are
tests/unit/pipeline_workflow_kit.py and tests/unit/pipeline_workflow_fakes.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError

from jobstream import cursors
from jobstream.job_state import JobMemo, StageState
from jobstream.workflow_io import CANCEL_REASON_SIGNAL, JobCancelledSpec, StageInput, StageOutput, Usage
from tests.unit.pipeline_workflow_fakes import WAIT_S, Stages
from tests.unit.pipeline_workflow_kit import (
    JOB_STARTED,
    assert_cancelled,
    completed,
    job,
    memo_of,
    records_of,
    remote,
    started,
    status_of,
    workflow_worker,
)


async def test_cancel_before_a_stage_starts(client: Client) -> None:
    # No stage worker: preprocess is scheduled and waits on its queue (schedule-to-start is a minute).
    async with job(client, Stages(), adjust=remote, serve_stages=False) as j:
        handle = await j.start()
        await j.events.wait_for("stage.started", "preprocess")
        await handle.cancel()
        await assert_cancelled(handle)

        assert j.stages.calls == []
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            ("job.cancelled", cursors.terminal(), "preprocess", 0, 0),
        ]
        ended = j.events.specs[-1]
        assert isinstance(ended, JobCancelledSpec)
        assert ended.tokens == 0
        memo = await memo_of(handle)
        assert (memo["status"], memo["stage"], memo.get("stages_completed")) == ("CANCELLED", "preprocess", None)


async def test_cancel_before_the_workflow_first_runs(client: Client) -> None:
    # Cancelled before any worker polls: the first workflow task carries the start and the cancel together.
    async with job(client, Stages(), serve_workflow=False) as j:
        handle = await j.start()
        await handle.cancel()
        async with workflow_worker(client, j.input.job_id, j.events):
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        assert j.stages.calls == []
        assert [spec.type for spec in j.events.specs][-1:] == ["job.cancelled"]
        assert (await memo_of(handle))["status"] == "CANCELLED"
        assert await status_of(handle) == (WorkflowExecutionStatus.CANCELED, "CANCELLED")


class SlowModel(Stages):
    def __init__(self) -> None:
        super().__init__()
        self.generating = asyncio.Event()
        self.stopped = asyncio.Event()

    async def do_run_model(self, stage: StageInput) -> StageOutput:
        self.generating.set()
        try:
            while True:
                activity.heartbeat({"tokens": 1})
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.stopped.set()
            raise


async def test_cancel_during_a_stage(client: Client) -> None:
    stages = SlowModel()
    async with job(client, stages) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.generating.wait(), WAIT_S)
        # As CancelJob does it: the reason first, then the cancel.
        await handle.signal(CANCEL_REASON_SIGNAL, "the user closed the tab")
        await handle.cancel()
        await assert_cancelled(handle)
        ended = j.events.specs[-1]
        assert isinstance(ended, JobCancelledSpec)
        assert ended.reason == "the user closed the tab"
        assert (await memo_of(handle))["cancel_reason"] == "the user closed the tab"
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.CANCELLED, 1, 0),
            ("postprocess", "postprocess", StageState.PENDING, 0, 0),
        ]

        # The workflow waited for the activity to confirm it stopped before it ended.
        assert stages.stopped.is_set()
        assert stages.attempts() == [("preprocess", 1), ("run_model", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            completed("preprocess", 0),
            started("generate", 1),
            ("job.cancelled", cursors.terminal(), "generate", 0, 0),
        ]
        memo = await memo_of(handle)
        assert (memo["status"], memo["stage"], memo["stages_completed"]) == ("CANCELLED", "generate", 1)

        history = await handle.fetch_history()
        kinds = [event.event_type for event in history.events]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in kinds


class CancelMissed(Stages):
    """preprocess never heartbeats, so the cancel never reaches it, and it completes normally."""

    def __init__(self) -> None:
        super().__init__()
        self.running = asyncio.Event()
        self.release = asyncio.Event()

    async def do_preprocess(self, stage: StageInput) -> StageOutput:
        self.running.set()
        await self.release.wait()
        return await super().do_preprocess(stage)


async def cancel_requested_of_activity(handle: WorkflowHandle[Any, Any]) -> None:
    while True:
        events = [event.event_type for event in (await handle.fetch_history()).events]
        if EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in events:
            return
        await asyncio.sleep(0.02)


async def test_cancel_that_a_stage_misses_still_cancels_the_job(client: Client) -> None:
    stages = CancelMissed()
    async with job(client, stages, adjust=remote) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.running.wait(), WAIT_S)
        await handle.cancel()
        # The workflow is waiting for preprocess to confirm the cancellation; it completes instead. (Released
        # only once the workflow has asked: released sooner, its completion can reach the workflow with the
        # cancel, in one task, and the job never learns that the stage finished.)
        await asyncio.wait_for(cancel_requested_of_activity(handle), WAIT_S)
        stages.release.set()
        await assert_cancelled(handle)

        assert stages.attempts() == [("preprocess", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            completed("preprocess", 0),
            ("job.cancelled", cursors.terminal(), "preprocess", 0, 0),
        ]
        assert (await memo_of(handle))["status"] == "CANCELLED"


async def test_cancel_during_a_local_stage_cancels_the_job(client: Client) -> None:
    """A local stage runs inside a workflow task, so a cancel reaches the job with the next task: after the
    stage and the scheduling of the remote stage it announced (which is then cancelled)."""
    stages = CancelMissed()
    async with job(client, stages) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.running.wait(), WAIT_S)
        await handle.cancel()
        stages.release.set()
        await assert_cancelled(handle)

        story = j.events.story()
        assert story[:4] == [JOB_STARTED, started("preprocess", 0), completed("preprocess", 0), started("generate", 1)]
        assert story[-1][:2] == ("job.cancelled", cursors.terminal())
        assert [name for name, _ in stages.attempts()][:1] == ["preprocess"]
        memo = await memo_of(handle)
        assert memo["status"] == "CANCELLED"
        assert (await records_of(handle))[0][2] == StageState.SUCCEEDED
        assert await status_of(handle) == (WorkflowExecutionStatus.CANCELED, "CANCELLED")


class StopsWhenCancelled(Stages):
    """run_model as the real one: on the job's cancellation it stops and reports what it delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.generating = asyncio.Event()

    async def do_run_model(self, stage: StageInput) -> StageOutput:
        self.generating.set()
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            return StageOutput(
                text=" there", tokens=3, attempt=activity.info().attempt, prompt_tokens=4, finish_reason="cancelled"
            )


async def test_a_cancelled_model_stage_reports_what_it_delivered(client: Client) -> None:
    stages = StopsWhenCancelled()
    async with job(client, stages) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.generating.wait(), WAIT_S)
        await handle.cancel()
        await assert_cancelled(handle)
        cancelled = j.events.specs[-1]
        assert isinstance(cancelled, JobCancelledSpec)
        assert (cancelled.type, cancelled.tokens, cancelled.finish_reason) == ("job.cancelled", 3, "cancelled")
        assert cancelled.usage == Usage(prompt_tokens=4, output_tokens=3)
        # The cut-short stage is cancelled, not completed: no stage.completed, its record says so.
        assert [spec.type for spec in j.events.specs].count("stage.completed") == 1
        memo = JobMemo.parse(await memo_of(handle))
        assert (memo.status, memo.tokens_generated, memo.finish_reason()) == ("CANCELLED", 3, "cancelled")
        assert memo.usage() == Usage(prompt_tokens=4, output_tokens=3)
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.CANCELLED, 1, 3),
            ("postprocess", "postprocess", StageState.PENDING, 0, 0),
        ]
