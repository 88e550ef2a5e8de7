"""A job's state as its workflow records it (memo and search attribute), and the one rule that turns a
workflow's description into the job's status.

The workflow writes the memo, the JobService writes its first version at submit, and the JobService and
the SSE bridge read it: all three go through `JobMemo`, so a key cannot be written under one name and read
under another.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio.client import WorkflowExecutionStatus

from jobstream.search_attributes import JOB_STATUS
from jobstream.workflow_io import Usage


class Status(StrEnum):
    """The job statuses, as the memo and the JobStatus search attribute spell them."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# What a closed workflow means for its job, whatever the memo last said.
CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: Status.SUCCEEDED,
    WorkflowExecutionStatus.FAILED: Status.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: Status.FAILED,
    WorkflowExecutionStatus.TERMINATED: Status.FAILED,
    WorkflowExecutionStatus.CANCELED: Status.CANCELLED,
}

# The same rule as `job_status`, as visibility queries (ListJobs' status filter).
STATUS_QUERY = {
    Status.QUEUED: f"ExecutionStatus = 'Running' AND {JOB_STATUS.name} = '{Status.QUEUED}'",
    Status.RUNNING: f"ExecutionStatus = 'Running' AND {JOB_STATUS.name} != '{Status.QUEUED}'",
    Status.SUCCEEDED: "ExecutionStatus = 'Completed'",
    Status.FAILED: "ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated')",
    Status.CANCELLED: "ExecutionStatus = 'Canceled'",
}

NO_RESULT_MESSAGE = "the job's workflow ended without a result"


class StageState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class StageRecord(BaseModel):
    """One stage of a job as it ran: kept in the memo, so a finished job still shows its retries."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    state: StageState = StageState.PENDING
    attempts: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    finish_reason: str = ""


class JobMemo(BaseModel):
    """The job's memo. Writers send only the fields they change (`changes()`); readers get every field,
    with defaults for those a job has not written yet (or, for a job started by older code, never will)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pipeline: str = ""
    status: Status = Status.QUEUED
    stage_count: int = 0
    # The SubmitJob request's digest: the same idempotency key with another request is refused.
    fingerprint: str = ""
    # Where the job's story starts in the event log; set with job.started.
    log_partition: int | None = None
    log_offset: int | None = None
    stage: str = ""
    stages_completed: int = 0
    tokens_generated: int = 0
    attempt: int = 0
    error_code: str = ""
    error_message: str = ""
    cancel_reason: str = ""
    stages: list[StageRecord] = []
    # SubmitJob's labels, written once at the start.
    metadata: dict[str, str] = {}

    @classmethod
    def parse(cls, memo: Mapping[str, Any]) -> JobMemo:
        return cls.model_validate(dict(memo))

    def changes(self) -> dict[str, Any]:
        """The fields this instance was built with, as a memo upsert."""
        return self.model_dump(mode="json", exclude_unset=True)

    def usage(self) -> Usage:
        """What the job's model stages used so far (their outputs are the tokens they delivered)."""
        return sum(
            (Usage(prompt_tokens=r.prompt_tokens, output_tokens=r.tokens) for r in self.stages if r.kind == "model"),
            Usage(),
        )

    def finish_reason(self) -> str:
        """Why the last model stage that ended stopped generating ("" before any has)."""
        reasons = [r.finish_reason for r in self.stages if r.kind == "model" and r.finish_reason]
        return reasons[-1] if reasons else ""

    def error_or_default(self, execution_status: WorkflowExecutionStatus | None) -> tuple[str, str]:
        """(code, message) of a failed job; a workflow that closed without recording one says how it closed."""
        code = self.error_code or (execution_status.name if execution_status else Status.FAILED.value)
        return code, self.error_message or NO_RESULT_MESSAGE


def job_status(execution_status: WorkflowExecutionStatus | None, memo: JobMemo) -> Status:
    """A job is terminal once its workflow has closed. Until then it has the status its workflow recorded,
    except that a recorded verdict still reads RUNNING: the workflow records it a moment before it closes
    (it publishes the terminal event in between), and until it has closed there is no result to report."""
    if execution_status in CLOSED_STATUS:
        return CLOSED_STATUS[execution_status]
    if memo.status in TERMINAL:
        return Status.RUNNING
    return memo.status


def verdict_recorded(execution_status: WorkflowExecutionStatus | None, memo: JobMemo) -> bool:
    """Whether the job's outcome is decided: its workflow closed, or it recorded SUCCEEDED/FAILED/CANCELLED."""
    return execution_status in CLOSED_STATUS or memo.status in TERMINAL
