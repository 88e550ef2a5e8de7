"""PipelineWorkflow when a stage fails, against a real Temporal dev server with every activity mocked: a
retryable error is retried within the stage (billed for every attempt's prompt), a non-retryable one fails the
job with its code, whether the stage is remote or local, and the memo and events say where it failed.

The dev server is the `client` fixture (tests/unit/conftest.py); the job harness and the mocked activities are
tests/unit/pipeline_workflow_kit.py and tests/unit/pipeline_workflow_fakes.py.
"""

from __future__ import annotations

import asyncio

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from jobstream import cursors
from jobstream.job_state import StageState
from jobstream.workflow_io import JobFailedSpec, JobResult, StageInput, StageOutput, Usage
from tests.unit.pipeline_workflow_fakes import FIRST_OFFSET, PARTITION, WAIT_S, Stages
from tests.unit.pipeline_workflow_kit import (
    JOB_STARTED,
    completed,
    job,
    memo_of,
    quick_retry,
    records_of,
    remote,
    started,
    status_of,
)


class OutOfMemoryOnce(Stages):
    def __init__(self) -> None:
        super().__init__()
        self.hold_postprocess = asyncio.Event()
        self.in_postprocess = asyncio.Event()

    async def do_run_model(self, stage: StageInput) -> StageOutput:
        if activity.info().attempt == 1:
            raise ApplicationError("CUDA out of memory at token 5", type="GpuOutOfMemory")
        return await super().do_run_model(stage)

    async def do_postprocess(self, stage: StageInput) -> StageOutput:
        self.in_postprocess.set()
        await self.hold_postprocess.wait()
        return await super().do_postprocess(stage)


async def test_model_stage_retried_after_retryable_error(client: Client) -> None:
    stages = OutOfMemoryOnce()
    async with job(client, stages, adjust=lambda stage: quick_retry(remote(stage))) as j:
        handle = await j.start()
        # Held in postprocess: the memo now tells the model stage's outcome, and it took two attempts.
        await asyncio.wait_for(stages.in_postprocess.wait(), WAIT_S)
        memo = await memo_of(handle)
        assert (memo["status"], memo["stage"], memo["stages_completed"], memo["attempt"]) == (
            "RUNNING",
            "postprocess",
            2,
            2,
        )
        assert memo["tokens_generated"] == 2
        assert await status_of(handle) == (WorkflowExecutionStatus.RUNNING, "RUNNING")
        stages.hold_postprocess.set()
        model_completed = next(s for s in j.events.specs if s.type == "stage.completed" and s.stage == "generate")
        assert model_completed.attempt == 2

        # Billed as a user is: both attempts' prompts, the two tokens once.
        assert await handle.result() == JobResult(
            text="Once upon a time there lived",
            tokens=2,
            usage=Usage(prompt_tokens=8, output_tokens=2),
            finish_reason="length",
        )
        assert stages.attempts() == [("preprocess", 1), ("run_model", 1), ("run_model", 2), ("postprocess", 1)]
        # The retry is the stage's own business: the job's story has one start and one end per stage.
        assert [spec.type for spec in j.events.specs] == [
            "job.started",
            *["stage.started", "stage.completed"] * 3,
            "job.completed",
        ]
        assert (await memo_of(handle))["status"] == "SUCCEEDED"
        assert await status_of(handle) == (WorkflowExecutionStatus.COMPLETED, "SUCCEEDED")
        # A finished job still shows that its model stage needed a second attempt.
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.SUCCEEDED, 2, 2),
            ("postprocess", "postprocess", StageState.SUCCEEDED, 1, 0),
        ]


class InvalidInput(Stages):
    async def do_run_model(self, stage: StageInput) -> StageOutput:
        raise ApplicationError("prompt has no tokens the model knows", type="InvalidInput", non_retryable=True)


async def test_non_retryable_failure_fails_the_job(client: Client) -> None:
    async with job(client, InvalidInput()) as j:
        handle = await j.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.message, cause.non_retryable) == (
            "InvalidInput",
            "prompt has no tokens the model knows",
            True,
        )

        assert j.stages.attempts() == [("preprocess", 1), ("run_model", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            completed("preprocess", 0),
            started("generate", 1),
            ("job.failed", cursors.terminal(), "generate", 0, 0),
        ]
        failed = j.events.specs[-1]
        assert isinstance(failed, JobFailedSpec)
        assert (failed.error_code, failed.error_message) == ("InvalidInput", "prompt has no tokens the model knows")

        memo = await memo_of(handle)
        keys = ("status", "stage", "stages_completed", "error_code", "error_message")
        assert {key: memo.get(key) for key in keys} == {
            "status": "FAILED",
            "stage": "generate",
            "stages_completed": 1,
            "error_code": "InvalidInput",
            "error_message": "prompt has no tokens the model knows",
        }
        assert await status_of(handle) == (WorkflowExecutionStatus.FAILED, "FAILED")
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.FAILED, 1, 0),
            ("postprocess", "postprocess", StageState.PENDING, 0, 0),
        ]


class BlankInput(Stages):
    async def do_preprocess(self, stage: StageInput) -> StageOutput:
        raise ApplicationError("input is empty after normalisation", type="InvalidInput", non_retryable=True)


async def test_a_local_stage_that_fails_fails_the_job_and_its_story_has_a_start(client: Client) -> None:
    """A local stage's failure reaches the workflow as the activity raised it (no ActivityError around it);
    the job fails with its code, and the events the stage had sent go out again with job.failed, so the memo
    names where the story starts (same ids: readers keep one copy)."""
    async with job(client, BlankInput()) as j:
        handle = await j.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.message) == ("InvalidInput", "input is empty after normalisation")
        assert j.stages.attempts() == [("preprocess", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            JOB_STARTED,
            started("preprocess", 0),
            ("job.failed", cursors.terminal(), "preprocess", 0, 0),
        ]
        memo = await memo_of(handle)
        assert (memo["status"], memo["error_code"], memo["stage"]) == ("FAILED", "InvalidInput", "preprocess")
        # The second job.started's offset: the mocked log hands out offsets in publishing order.
        assert (memo["log_partition"], memo["log_offset"]) == (PARTITION, FIRST_OFFSET + 2)
        assert await status_of(handle) == (WorkflowExecutionStatus.FAILED, "FAILED")
