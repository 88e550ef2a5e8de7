"""A job as callers see it, read from its workflow: status, stage, progress, tokens, attempt, stages, result,
error."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecution, WorkflowExecutionDescription

from jobstream.job_events import usage_proto
from jobstream.job_state import JobMemo, StageRecord, Status, job_status
from jobstream.search_attributes import JOB_TENANT
from jobstream.v1.job_pb2 import Job, JobError, JobStage, JobStatus
from jobstream.v1.job_pb2 import StageState as StageStateProto
from jobstream.workflow_io import StageProgress


def status_proto(status: Status) -> JobStatus:
    return cast(JobStatus, JobStatus.Value(f"JOB_STATUS_{status.value}"))


def status_of_proto(status: int) -> Status | None:
    """The status a ListJobs filter names; None for UNSPECIFIED or a number that is no status."""
    try:
        name = JobStatus.Name(cast(JobStatus, status))
    except ValueError:
        return None
    return Status.__members__.get(name.removeprefix("JOB_STATUS_"))


def new_job_id() -> str:
    return "job_" + base64.b32encode(secrets.token_bytes(20)).decode().lower()[:26]


def idempotent_job_id(tenant: str, key: str) -> str:
    """One job id per (tenant, key): two tenants using the same key never collide."""
    digest = hashlib.sha256(f"{tenant}\0{key}".encode()).digest()
    return "job_" + base64.b32encode(digest).decode().lower()[:26]


def owner_of(execution: WorkflowExecution) -> str | None:
    return execution.typed_search_attributes.get(JOB_TENANT)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _stage_proto(record: StageRecord) -> JobStage:
    return JobStage(
        name=record.name,
        kind=record.kind,
        state=f"STAGE_STATE_{record.state.value}",
        attempts=record.attempts,
        start_time=_timestamp(record.start_time),
        end_time=_timestamp(record.end_time),
        tokens_generated=record.tokens,
        prompt_tokens=record.prompt_tokens,
        finish_reason=record.finish_reason,
    )


async def job_view(execution: WorkflowExecution) -> Job:
    """The job from one visibility record (enough for ListJobs; GetJob adds live details)."""
    memo = JobMemo.parse(await execution.memo())
    status = job_status(execution.status, memo)
    completed = memo.stages_completed
    job = Job(
        job_id=execution.id,
        pipeline=memo.pipeline,
        status=status_proto(status),
        stage=memo.stage,
        stages_completed=completed,
        stage_count=memo.stage_count,
        progress=completed / memo.stage_count if memo.stage_count else 0.0,
        tokens_generated=memo.tokens_generated,
        attempt=memo.attempt,
        create_time=_timestamp(execution.start_time),
        update_time=_timestamp(execution.close_time or execution.execution_time or execution.start_time),
        stages=[_stage_proto(record) for record in memo.stages],
        usage=usage_proto(memo.usage()),
        finish_reason=memo.finish_reason(),
        metadata=memo.metadata,
    )
    if status == Status.FAILED:
        code, message = memo.error_or_default(execution.status)
        job.error.CopyFrom(JobError(code=code, message=message))
    if status == Status.CANCELLED:
        job.cancel_reason = memo.cancel_reason
    return job


def add_live_details(job: Job, description: WorkflowExecutionDescription, progress: StageProgress | None) -> None:
    """Attempt and tokens so far come from the running stage's pending activity and its heartbeat."""
    running = next((stage for stage in job.stages if stage.state == StageStateProto.STAGE_STATE_RUNNING), None)
    for pending in description.raw_description.pending_activities:
        # The running stage's attempt is the job's current one.
        job.attempt = pending.attempt
        if running is not None:
            running.attempts = pending.attempt
        if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and pending.HasField(
            "last_heartbeat_time"
        ):
            job.update_time.CopyFrom(pending.last_heartbeat_time)
    if progress is not None and job.status == JobStatus.JOB_STATUS_RUNNING:
        job.tokens_generated = progress.tokens
        if running is not None:
            running.tokens_generated = progress.tokens
            running.prompt_tokens = progress.prompt_tokens
            # Usage so far: the finished stages' and what the running one has delivered.
            job.usage.prompt_tokens += progress.prompt_tokens
            job.usage.output_tokens += progress.tokens
