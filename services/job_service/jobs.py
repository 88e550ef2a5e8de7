"""A job as callers see it, read from its workflow: status, stage, progress, tokens, attempt, result, error."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecution, WorkflowExecutionDescription, WorkflowExecutionStatus

from jobstream.search_attributes import JOB_TENANT
from jobstream.v1.job_pb2 import Job, JobError, JobStatus

STATUS_BY_NAME = {
    "QUEUED": JobStatus.JOB_STATUS_QUEUED,
    "RUNNING": JobStatus.JOB_STATUS_RUNNING,
    "SUCCEEDED": JobStatus.JOB_STATUS_SUCCEEDED,
    "FAILED": JobStatus.JOB_STATUS_FAILED,
    "CANCELLED": JobStatus.JOB_STATUS_CANCELLED,
}
NAME_BY_STATUS = {value: name for name, value in STATUS_BY_NAME.items()}
CLOSED = {
    WorkflowExecutionStatus.COMPLETED: JobStatus.JOB_STATUS_SUCCEEDED,
    WorkflowExecutionStatus.FAILED: JobStatus.JOB_STATUS_FAILED,
    WorkflowExecutionStatus.TIMED_OUT: JobStatus.JOB_STATUS_FAILED,
    WorkflowExecutionStatus.TERMINATED: JobStatus.JOB_STATUS_FAILED,
    WorkflowExecutionStatus.CANCELED: JobStatus.JOB_STATUS_CANCELLED,
}


def new_job_id() -> str:
    return "job_" + base64.b32encode(secrets.token_bytes(20)).decode().lower()[:26]


def idempotent_job_id(tenant: str, key: str) -> str:
    """One job id per (tenant, key): two tenants using the same key never collide."""
    digest = hashlib.sha256(f"{tenant}\0{key}".encode()).digest()
    return "job_" + base64.b32encode(digest).decode().lower()[:26]


def tenant_of(execution: WorkflowExecution) -> str | None:
    return execution.typed_search_attributes.get(JOB_TENANT)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


async def job_view(execution: WorkflowExecution) -> Job:
    """The job from one visibility record (enough for ListJobs; GetJob adds live details)."""
    memo: Mapping[str, Any] = await execution.memo()
    if execution.status in CLOSED:
        status = CLOSED[execution.status]
    else:
        status = STATUS_BY_NAME.get(str(memo.get("status", "QUEUED")), JobStatus.JOB_STATUS_QUEUED)
        if status in CLOSED.values():
            # The workflow records its verdict a moment before it closes (it still publishes the terminal
            # event): until it has closed there is no result to report, so the job is still RUNNING.
            status = JobStatus.JOB_STATUS_RUNNING
    stage_count = int(memo.get("stage_count", 0))
    completed = int(memo.get("stages_completed", 0))
    job = Job(
        job_id=execution.id,
        pipeline=str(memo.get("pipeline", "")),
        status=status,
        stage=str(memo.get("stage", "")),
        stages_completed=completed,
        stage_count=stage_count,
        progress=completed / stage_count if stage_count else 0.0,
        tokens_generated=int(memo.get("tokens_generated", 0)),
        attempt=int(memo.get("attempt", 0)),
        create_time=_timestamp(execution.start_time),
        update_time=_timestamp(execution.close_time or execution.execution_time or execution.start_time),
    )
    if status == JobStatus.JOB_STATUS_FAILED:
        job.error.CopyFrom(
            JobError(
                code=str(memo.get("error_code", execution.status.name if execution.status else "FAILED")),
                message=str(memo.get("error_message", "the job's workflow ended without a result")),
            )
        )
    return job


async def verdict_recorded(execution: WorkflowExecution) -> bool:
    """Whether the job's outcome is decided: its workflow closed, or recorded SUCCEEDED/FAILED/CANCELLED."""
    if execution.status in CLOSED:
        return True
    memo: Mapping[str, Any] = await execution.memo()
    return str(memo.get("status", "QUEUED")) not in ("QUEUED", "RUNNING")


def add_live_details(job: Job, description: WorkflowExecutionDescription, tokens: int | None) -> None:
    """Attempt and tokens so far come from the running stage's pending activity and its heartbeat."""
    for pending in description.raw_description.pending_activities:
        # The running stage's attempt is the job's current one.
        job.attempt = pending.attempt
        if pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and pending.HasField(
            "last_heartbeat_time"
        ):
            job.update_time.CopyFrom(pending.last_heartbeat_time)
    if tokens is not None and job.status == JobStatus.JOB_STATUS_RUNNING:
        job.tokens_generated = tokens
