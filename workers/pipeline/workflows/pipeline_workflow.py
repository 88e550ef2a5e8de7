"""One workflow type runs every declared pipeline: stages in order, each an activity on its own queue.

Orchestration only: every side effect (Triton, Kafka, MinIO, clocks) happens in activities. The job's
observable state lives in search attributes (status, for ListJobs) and memo (stage, progress, error, for
GetJob), both readable without a worker.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    from jobstream import cursors
    from jobstream.search_attributes import JOB_STATUS
    from workers.pipeline.types import EventSpec, JobInput, JobResult, StageInput, StageOutput
    from workers.pipelines import ResolvedStage

ACTIVITY_BY_KIND = {"preprocess": "preprocess", "model": "run_model", "postprocess": "postprocess"}
PUBLISH_TIMEOUT = timedelta(seconds=10)
PUBLISH_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5))


@workflow.defn(name="PipelineWorkflow")
class PipelineWorkflow:
    def __init__(self) -> None:
        self._stage = ""
        self._stages_completed = 0
        self._tokens = 0

    @workflow.run
    async def run(self, job: JobInput) -> JobResult:
        stage_names = [stage.name for stage in job.stages]
        self._set_status("RUNNING")
        partition, offset = await self._publish(
            EventSpec(
                job_id=job.job_id,
                type="job.started",
                cursor=cursors.job_started(),
                pipeline=job.pipeline,
                stages=stage_names,
            )
        )
        # Where the job's story starts in the log: replay seeks here instead of scanning a partition.
        workflow.upsert_memo({"log_partition": partition, "log_offset": offset})
        data = StageOutput(text=job.prompt, ref=job.input_ref)
        try:
            for index, stage in enumerate(job.stages):
                data = await self._run_stage(job, index, stage, data)
                if _cancel_requested():
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
            code, message = _describe(error)
            self._set_status("FAILED", error_code=code, error_message=message)
            await self._publish(
                EventSpec(
                    job_id=job.job_id,
                    type="job.failed",
                    cursor=cursors.terminal(),
                    stage=self._stage,
                    error_code=code,
                    error_message=message,
                )
            )
            raise ApplicationError(message, type=code, non_retryable=True) from error
        result = JobResult(text=data.text, ref=data.ref, tokens=self._tokens)
        self._set_status("SUCCEEDED")
        await self._publish(
            EventSpec(
                job_id=job.job_id,
                type="job.completed",
                cursor=cursors.terminal(),
                result_text=data.text,
                result_ref=data.ref,
                tokens=self._tokens,
            )
        )
        return result

    async def _run_stage(self, job: JobInput, index: int, stage: ResolvedStage, data: StageOutput) -> StageOutput:
        count = len(job.stages)
        self._stage = stage.name
        workflow.upsert_memo({"stage": stage.name})
        event = EventSpec(
            job_id=job.job_id,
            type="stage.started",
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
            retry_policy=RetryPolicy(
                maximum_attempts=stage.retry.maximum_attempts,
                initial_interval=stage.retry.initial_interval,
                backoff_coefficient=stage.retry.backoff_coefficient,
                maximum_interval=stage.retry.maximum_interval,
                non_retryable_error_types=list(stage.retry.non_retryable),
            ),
            # Wait for the activity to confirm it stopped, so a cancelled job has really stopped generating.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        if stage.kind == "model":
            # The job's token count is its last model stage's: that stage's output is the result.
            self._tokens = output.tokens
        self._stages_completed = index + 1
        workflow.upsert_memo(
            {"stages_completed": self._stages_completed, "tokens_generated": self._tokens, "attempt": output.attempt}
        )
        await self._publish(
            event.model_copy(update={"type": "stage.completed", "cursor": cursors.stage_completed(index)})
        )
        return output

    async def _finish_cancelled(self, job: JobInput) -> None:
        self._set_status("CANCELLED")
        await self._publish(
            EventSpec(
                job_id=job.job_id,
                type="job.cancelled",
                cursor=cursors.terminal(),
                stage=self._stage,
                tokens=self._tokens,
            )
        )

    def _set_status(self, status: str, error_code: str = "", error_message: str = "") -> None:
        workflow.upsert_search_attributes([JOB_STATUS.value_set(status)])
        memo: dict[str, object] = {"status": status}
        if error_code:
            memo |= {"error_code": error_code, "error_message": error_message}
        workflow.upsert_memo(memo)

    async def _publish(self, event: EventSpec) -> list[int]:
        # A local activity: it runs in this workflow's worker without a trip through a task queue. Five
        # such trips stood between SubmitJob and the first token, at ~100 ms each on the dev server.
        # Shielded: a cancelled job must still tell its watchers that it was cancelled.
        return await asyncio.shield(
            workflow.execute_local_activity(
                "publish_event",
                event,
                result_type=list[int],
                start_to_close_timeout=PUBLISH_TIMEOUT,
                retry_policy=PUBLISH_RETRY,
            )
        )


def _cancel_requested() -> bool:
    """Whether the workflow was cancelled, even if the await it interrupted completed normally."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _describe(error: ActivityError) -> tuple[str, str]:
    """(code, message) of the failure that ended a stage: the application error's type when it has one."""
    cause: BaseException | None = error.cause
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "ApplicationError", cause.message
        if isinstance(cause, FailureError) and cause.cause is None:
            return type(cause).__name__, cause.message
        cause = cause.__cause__
    return "ActivityError", str(error)
