"""One workflow type runs every declared pipeline: stages in order, each an activity on its own queue.

Orchestration only: every side effect (Triton, Kafka, MinIO, clocks) happens in activities. The job's
observable state lives in search attributes (status, for ListJobs) and memo (stage, progress, error, for
GetJob), both readable without a worker.

Few durable trips: the job's events wait in an outbox and go out with the next trip the workflow makes
anyway. A local CPU stage carries the events before and after it (its activity publishes them), a remote
stage is preceded by one publish of all that is pending, and the memo is upserted once per workflow task.
The job's end is the exception: its event goes out on an activity of its own, scheduled by the task that
records the verdict (`_publish_verdict` says why). For `generate`: one workflow task and one local activity
from the start to the model's schedule, three workflow tasks in all. (Jobs started before this, as the type
`PipelineWorkflow`, finish on `legacy_pipeline_workflow.py`.)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

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
        WORKFLOW_TYPE,
        EventSpec,
        JobCancelledSpec,
        JobCompletedSpec,
        JobFailedSpec,
        JobInput,
        JobResult,
        JobStartedSpec,
        LocalStage,
        LocalStageResult,
        StageCompletedSpec,
        StageInput,
        StageOutput,
        StageStartedSpec,
        Usage,
    )
    from workers.pipeline.workflows import stage_outcomes
    from workers.pipeline.workflows.memo_buffer import MemoBuffer
    from workers.pipeline.workflows.outbox import Outbox

ACTIVITY_BY_KIND = {"preprocess": "preprocess", "model": "run_model", "postprocess": "postprocess"}
PUBLISH_TIMEOUT = timedelta(seconds=10)
PUBLISH_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5))
# Jobs started with this patch publish their terminal event only once the workflow has recorded its verdict.
VERDICT_FIRST_PATCH = "terminal-event-after-verdict"


@workflow.defn(name=WORKFLOW_TYPE)
class PipelineWorkflow:
    def __init__(self) -> None:
        self._stage = ""
        self._tokens = 0
        self._usage = Usage()
        self._finish_reason = ""
        self._cancel_reason = ""
        self._meter = workflow.metric_meter()
        self._memo = MemoBuffer()
        self._verdict_first = False

    @workflow.signal(name=CANCEL_REASON_SIGNAL)
    def set_cancel_reason(self, reason: str) -> None:
        self._cancel_reason = reason

    @workflow.run
    async def run(self, job: JobInput) -> JobResult:
        # The workflow's meter skips replays: a job is counted once however often its history is replayed.
        self._meter = workflow.metric_meter().with_additional_attributes({"pipeline": job.pipeline})
        self._meter.create_counter("jobstream_jobs_started", "Jobs whose workflow began.").add(1)
        self._memo.records = [StageRecord(name=stage.name, kind=stage.kind) for stage in job.stages]
        self._verdict_first = workflow.patched(VERDICT_FIRST_PATCH)
        self._set_status(Status.RUNNING)
        outbox = Outbox(
            JobStartedSpec(
                job_id=job.job_id,
                cursor=cursors.job_started(),
                pipeline=job.pipeline,
                stages=[stage.name for stage in job.stages],
            )
        )
        data = StageOutput(text=job.prompt, ref=job.input_ref)
        try:
            for index, stage in enumerate(job.stages):
                data = await self._run_stage(job, index, stage, data, outbox)
                # A cancel that arrives after job.completed went out is too late: the job did complete.
                if stage_outcomes.cancel_requested() and not outbox.ended:
                    raise asyncio.CancelledError
        except asyncio.CancelledError:
            await self._finish_cancelled(job, outbox)
            raise
        # A local activity's failure arrives as the activity raised it, not wrapped in an ActivityError.
        except (ActivityError, ApplicationError, CancelledError) as error:
            if isinstance(error, CancelledError) or isinstance(error.cause, CancelledError):
                await self._finish_cancelled(job, outbox)
                raise
            code, message = stage_outcomes.describe(error)
            attempts = stage_outcomes.attempts_used(error, job, self._stage) if isinstance(error, ActivityError) else 0
            self._memo.end_running_stage(StageState.FAILED, workflow.now(), attempts=attempts)
            self._set_status(Status.FAILED, error_code=code, error_message=message)
            failed = JobFailedSpec(
                job_id=job.job_id,
                cursor=cursors.terminal(),
                stage=self._stage,
                error_code=code,
                error_message=message,
                usage=self._usage,
            )
            await self._publish_verdict(outbox, failed)
            self._memo.flush()
            raise ApplicationError(message, type=code, non_retryable=True) from error
        self._set_status(Status.SUCCEEDED)
        if not outbox.ended:
            completed = self._job_completed(job).model_copy(update={"result_text": data.text, "result_ref": data.ref})
            await self._publish_verdict(outbox, completed)
        self._memo.flush()
        return JobResult(
            text=data.text, ref=data.ref, tokens=self._tokens, usage=self._usage, finish_reason=self._finish_reason
        )

    async def _run_stage(
        self, job: JobInput, index: int, stage: ResolvedStage, data: StageOutput, outbox: Outbox
    ) -> StageOutput:
        """Run one stage; `outbox` holds the events still to publish, and this stage's stage.completed after."""
        count = len(job.stages)
        self._stage = stage.name
        self._memo.update_record(index, state=StageState.RUNNING, attempts=1, start_time=workflow.now())
        self._memo.add(JobMemo(stage=stage.name).changes() | self._memo.records_changes())
        started = _stage_started(job, index)
        completed = StageCompletedSpec(
            **started.model_dump(exclude={"type", "cursor"}), cursor=cursors.stage_completed(index)
        )
        outbox.stage_starts(index, started)
        stage_input = StageInput(
            job_id=job.job_id,
            stage=stage,
            stage_index=index,
            stage_count=count,
            text=data.text,
            ref=data.ref,
            params=job.params,
        )
        if stage.local:
            before = outbox.take_for_local_stage()
            after: list[EventSpec] = [completed]
            if index + 1 == count:
                if not self._verdict_first:
                    # Before VERDICT_FIRST_PATCH the job's end went out with its last stage (the activity filled
                    # in the result): no trip of its own, but sent before the verdict was recorded.
                    after.append(self._job_completed(job))
                    outbox.ended = True
            elif not job.stages[index + 1].local:
                # The remote stage after this one is scheduled in this same workflow task: announce it now,
                # or its stage.started would cost a trip of its own.
                after.append(outbox.announce(index + 1, _stage_started(job, index + 1)))
            result: LocalStageResult = await workflow.execute_local_activity(
                "run_local_stage",
                LocalStage(stage=stage_input, publish_before=before, publish_after=after),
                result_type=LocalStageResult,
                start_to_close_timeout=stage.timeouts.start_to_close,
                retry_policy=stage_outcomes.retry_policy(stage),
            )
            self._record_start(outbox.published(before, result.published_before))
            output = result.output
        else:
            if outbox.pending:
                events = outbox.take()
                self._record_start(outbox.published(events, await self._publish_all(events)))
            self._memo.flush()  # the workflow task ends here, while the stage runs
            output = await workflow.execute_activity(
                ACTIVITY_BY_KIND[stage.kind],
                stage_input,
                result_type=StageOutput,
                task_queue=stage.queue,
                schedule_to_start_timeout=stage.timeouts.schedule_to_start,
                start_to_close_timeout=stage.timeouts.start_to_close,
                heartbeat_timeout=stage.timeouts.heartbeat,
                retry_policy=stage_outcomes.retry_policy(stage),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        if stage.kind == "model":
            self._tokens = output.tokens
            self._usage += Usage(prompt_tokens=output.prompt_tokens, output_tokens=output.tokens)
            self._finish_reason = output.finish_reason
            self._memo.update_record(index, prompt_tokens=output.prompt_tokens, finish_reason=output.finish_reason)
        if output.finish_reason == "cancelled":
            self._memo.update_record(index, attempts=output.attempt, tokens=output.tokens)
            raise asyncio.CancelledError
        self._memo.update_record(
            index, state=StageState.SUCCEEDED, attempts=output.attempt, end_time=workflow.now(), tokens=output.tokens
        )
        memo = JobMemo(stages_completed=index + 1, tokens_generated=self._tokens, attempt=output.attempt)
        self._memo.add(memo.changes() | self._memo.records_changes())
        if not stage.local:
            outbox.add(completed.model_copy(update={"attempt": output.attempt}))
        return output

    def _job_completed(self, job: JobInput) -> JobCompletedSpec:
        return JobCompletedSpec(
            job_id=job.job_id,
            cursor=cursors.terminal(),
            tokens=self._tokens,
            usage=self._usage,
            finish_reason=self._finish_reason,
        )

    def _record_start(self, started: LogLocator | None) -> None:
        """Where the job's story starts in the log, once job.started is out: replay seeks there."""
        if started is not None:
            self._memo.add(JobMemo(log_partition=started.partition, log_offset=started.offset).changes())

    async def _finish_cancelled(self, job: JobInput, outbox: Outbox) -> None:
        self._memo.end_running_stage(StageState.CANCELLED, workflow.now())
        self._set_status(Status.CANCELLED)
        cancelled = JobCancelledSpec(
            job_id=job.job_id,
            cursor=cursors.terminal(),
            stage=self._stage,
            tokens=self._tokens,
            reason=self._cancel_reason,
            usage=self._usage,
            finish_reason=self._finish_reason or "cancelled",
        )
        await self._publish_verdict(outbox, cancelled)
        self._memo.flush()

    async def _publish_verdict(self, outbox: Outbox, terminal: EventSpec) -> None:
        """Publish what is left in the outbox and the job's terminal event, once the verdict is recorded.

        Everything a workflow task does in its worker (local activities included) is undone if the task times
        out and runs again, but its side effects are not: a worker stalled in its last local stage while a
        cancel landed published job.completed after the re-run task had published job.cancelled under the
        same event id. An activity is scheduled only when the task that decided it completes, with the
        verdict (status and memo) in the same completion: a stale task's completion is refused, so a terminal
        event can come from no task but the one whose verdict stands."""
        if self._verdict_first:
            self._memo.flush()  # the verdict goes with the completion that schedules the publish
        events = outbox.ending_with(terminal)
        self._record_start(outbox.published(events, await self._publish_all(events, scheduled=self._verdict_first)))

    def _set_status(self, status: Status, error_code: str = "", error_message: str = "") -> None:
        workflow.upsert_search_attributes([JOB_STATUS.value_set(status.value)])
        if status != Status.RUNNING:
            self._meter.create_counter("jobstream_jobs_finished", "Jobs that ended, by status.").add(
                1, {"status": status.value.lower()}
            )
        memo = JobMemo(status=status).changes()
        if error_code:
            memo |= JobMemo(error_code=error_code, error_message=error_message).changes()
        if status in (Status.FAILED, Status.CANCELLED):
            memo |= self._memo.records_changes()
        if status == Status.CANCELLED:
            memo |= JobMemo(cancel_reason=self._cancel_reason, tokens_generated=self._tokens).changes()
        self._memo.add(memo)

    async def _publish_all(self, events: list[EventSpec], scheduled: bool = False) -> list[LogLocator]:
        # A local activity: it runs in this workflow's worker without a trip through a task queue; `scheduled`:
        # an activity, which exists only once this workflow task's completion is accepted (_publish_verdict).
        # Shielded: a cancelled job must still tell its watchers that it was cancelled.
        execute = workflow.execute_activity if scheduled else workflow.execute_local_activity
        locators: list[LogLocator] = await asyncio.shield(
            execute(
                "publish_events",
                events,
                result_type=list[LogLocator],
                start_to_close_timeout=PUBLISH_TIMEOUT,
                retry_policy=PUBLISH_RETRY,
            )
        )
        return locators


def _stage_started(job: JobInput, index: int) -> StageStartedSpec:
    return StageStartedSpec(
        job_id=job.job_id,
        cursor=cursors.stage_started(index),
        stage=job.stages[index].name,
        stage_index=index,
        stage_count=len(job.stages),
    )
