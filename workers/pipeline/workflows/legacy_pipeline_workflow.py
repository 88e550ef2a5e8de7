"""The pipeline workflow as it was before PipelineWorkflowV2 (workers/pipeline/workflows/pipeline_workflow.py):
frozen, registered only so that jobs started under the type `PipelineWorkflow` finish (and their histories
replay). New jobs start the V2 type. Do not change what this code does; delete it once no such job can be
running or replayed.

One workflow type runs every declared pipeline: stages in order, each an activity on its own queue.

Orchestration only: every side effect (Triton, Kafka, MinIO, clocks) happens in activities. The job's
observable state lives in search attributes (status, for ListJobs) and memo (stage, progress, error, for
GetJob), both readable without a worker.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from jobstream import cursors
    from jobstream.event_log import LogLocator
    from jobstream.job_state import JobMemo, StageRecord, StageState, Status
    from jobstream.pipelines import ResolvedStage
    from jobstream.search_attributes import JOB_STATUS
    from jobstream.workflow_io import (
        CANCEL_REASON_SIGNAL,
        LEGACY_WORKFLOW_TYPE,
        EventSpec,
        JobCancelledSpec,
        JobCompletedSpec,
        JobFailedSpec,
        JobInput,
        JobResult,
        JobStartedSpec,
        StageCompletedSpec,
        StageInput,
        StageOutput,
        StageStartedSpec,
        Usage,
    )
    from workers.pipeline.workflows import stage_outcomes

ACTIVITY_BY_KIND = {"preprocess": "preprocess", "model": "run_model", "postprocess": "postprocess"}
PUBLISH_TIMEOUT = timedelta(seconds=10)
PUBLISH_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5))
# Jobs started before this patch kept no per-stage records and published stage.completed with attempt 0.
STAGE_RECORDS_PATCH = "stage-records"


@workflow.defn(name=LEGACY_WORKFLOW_TYPE)
class LegacyPipelineWorkflow:
    def __init__(self) -> None:
        self._stage = ""
        self._tokens = 0
        self._usage = Usage()
        self._finish_reason = ""
        self._cancel_reason = ""
        self._records: list[StageRecord] = []
        self._keeps_records = False

    @workflow.signal(name=CANCEL_REASON_SIGNAL)
    def set_cancel_reason(self, reason: str) -> None:
        self._cancel_reason = reason

    @workflow.run
    async def run(self, job: JobInput) -> JobResult:
        stage_names = [stage.name for stage in job.stages]
        self._keeps_records = workflow.patched(STAGE_RECORDS_PATCH)
        if self._keeps_records:
            self._records = [StageRecord(name=stage.name, kind=stage.kind) for stage in job.stages]
        self._set_status(Status.RUNNING)
        data = StageOutput(text=job.prompt, ref=job.input_ref)
        try:
            # Inside the try: a cancel that arrives with the workflow's first task interrupts this publish,
            # and the job must still end CANCELLED and say so.
            locator = await self._publish(
                JobStartedSpec(
                    job_id=job.job_id,
                    cursor=cursors.job_started(),
                    pipeline=job.pipeline,
                    stages=stage_names,
                )
            )
            # Where the job's story starts in the log: replay seeks here instead of scanning a partition.
            workflow.upsert_memo(JobMemo(log_partition=locator.partition, log_offset=locator.offset).changes())
            for index, stage in enumerate(job.stages):
                data = await self._run_stage(job, index, stage, data)
                if stage_outcomes.cancel_requested():
                    # The stage finished before its cancellation reached it, so nothing raised: the job
                    # was still cancelled, and it must end so instead of running on.
                    raise asyncio.CancelledError
        except asyncio.CancelledError:
            await self._finish_cancelled(job)
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                await self._finish_cancelled(job)
                raise
            code, message = stage_outcomes.describe(error)
            self._end_stage(StageState.FAILED, attempts=stage_outcomes.attempts_used(error, job, self._stage))
            self._set_status(Status.FAILED, error_code=code, error_message=message)
            await self._publish(
                JobFailedSpec(
                    job_id=job.job_id,
                    cursor=cursors.terminal(),
                    stage=self._stage,
                    error_code=code,
                    error_message=message,
                    usage=self._usage,
                )
            )
            raise ApplicationError(message, type=code, non_retryable=True) from error
        result = JobResult(
            text=data.text, ref=data.ref, tokens=self._tokens, usage=self._usage, finish_reason=self._finish_reason
        )
        self._set_status(Status.SUCCEEDED)
        await self._publish(
            JobCompletedSpec(
                job_id=job.job_id,
                cursor=cursors.terminal(),
                result_text=data.text,
                result_ref=data.ref,
                tokens=self._tokens,
                usage=self._usage,
                finish_reason=self._finish_reason,
            )
        )
        return result

    async def _run_stage(self, job: JobInput, index: int, stage: ResolvedStage, data: StageOutput) -> StageOutput:
        count = len(job.stages)
        self._stage = stage.name
        self._update_record(index, state=StageState.RUNNING, attempts=1, start_time=workflow.now())
        workflow.upsert_memo(JobMemo(stage=stage.name).changes() | self._records_changes())
        event = StageStartedSpec(
            job_id=job.job_id,
            cursor=cursors.stage_started(index),
            stage=stage.name,
            stage_index=index,
            stage_count=count,
        )
        await self._publish(event)
        output: StageOutput = await workflow.execute_activity(
            ACTIVITY_BY_KIND[stage.kind],
            StageInput(
                job_id=job.job_id,
                stage=stage,
                stage_index=index,
                stage_count=count,
                text=data.text,
                ref=data.ref,
                params=job.params,
            ),
            result_type=StageOutput,
            task_queue=stage.queue,
            schedule_to_start_timeout=stage.timeouts.schedule_to_start,
            start_to_close_timeout=stage.timeouts.start_to_close,
            heartbeat_timeout=stage.timeouts.heartbeat,
            retry_policy=stage_outcomes.retry_policy(stage),
            # Wait for the activity to confirm it stopped, so a cancelled job has really stopped generating.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        if stage.kind == "model":
            # The job's token count is its last model stage's: that stage's output is the result.
            self._tokens = output.tokens
            self._usage += Usage(prompt_tokens=output.prompt_tokens, output_tokens=output.tokens)
            self._finish_reason = output.finish_reason
            self._update_record(index, prompt_tokens=output.prompt_tokens, finish_reason=output.finish_reason)
        if output.finish_reason == "cancelled":
            # The model stage stopped for the job's cancellation and reported what it had delivered.
            self._update_record(index, attempts=output.attempt, tokens=output.tokens)
            raise asyncio.CancelledError
        self._update_record(
            index, state=StageState.SUCCEEDED, attempts=output.attempt, end_time=workflow.now(), tokens=output.tokens
        )
        memo = JobMemo(stages_completed=index + 1, tokens_generated=self._tokens, attempt=output.attempt)
        workflow.upsert_memo(memo.changes() | self._records_changes())
        completed = event.model_dump(exclude={"type", "cursor", "attempt"})
        attempt = output.attempt if self._keeps_records else 0
        await self._publish(StageCompletedSpec(**completed, cursor=cursors.stage_completed(index), attempt=attempt))
        return output

    def _update_record(self, index: int, **changes: object) -> None:
        if self._keeps_records:
            self._records[index] = self._records[index].model_copy(update=changes)

    def _records_changes(self) -> dict[str, Any]:
        return JobMemo(stages=self._records).changes() if self._keeps_records else {}

    def _end_stage(self, state: StageState, attempts: int = 0) -> None:
        """Record how the running stage ended, when the job ends inside it (failed or cancelled)."""
        for index, record in enumerate(self._records):
            if record.state == StageState.RUNNING:
                update: dict[str, object] = {"state": state, "end_time": workflow.now()}
                if attempts:
                    update["attempts"] = attempts
                self._update_record(index, **update)

    async def _finish_cancelled(self, job: JobInput) -> None:
        self._end_stage(StageState.CANCELLED)
        self._set_status(Status.CANCELLED)
        await self._publish(
            JobCancelledSpec(
                job_id=job.job_id,
                cursor=cursors.terminal(),
                stage=self._stage,
                tokens=self._tokens,
                reason=self._cancel_reason,
                usage=self._usage,
                finish_reason=self._finish_reason or "cancelled",
            )
        )

    def _set_status(self, status: Status, error_code: str = "", error_message: str = "") -> None:
        workflow.upsert_search_attributes([JOB_STATUS.value_set(status.value)])
        memo = JobMemo(status=status).changes()
        if error_code:
            memo |= JobMemo(error_code=error_code, error_message=error_message).changes()
        if status in (Status.FAILED, Status.CANCELLED):
            memo |= self._records_changes()
        if status == Status.CANCELLED and self._keeps_records:
            memo |= JobMemo(cancel_reason=self._cancel_reason, tokens_generated=self._tokens).changes()
        workflow.upsert_memo(memo)

    async def _publish(self, event: EventSpec) -> LogLocator:
        # A local activity: it runs in this workflow's worker without a trip through a task queue. Five
        # such trips stood between SubmitJob and the first token, at ~100 ms each on the dev server.
        # Shielded: a cancelled job must still tell its watchers that it was cancelled.
        return await asyncio.shield(
            workflow.execute_local_activity(
                "publish_event",
                event,
                result_type=LogLocator,
                start_to_close_timeout=PUBLISH_TIMEOUT,
                retry_policy=PUBLISH_RETRY,
            )
        )
