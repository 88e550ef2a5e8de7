"""What both workflow types (PipelineWorkflowV2 and the frozen PipelineWorkflow) decide the same way about a
stage: its retry policy, how many attempts a failed one used, whether the workflow was cancelled, and the
code and message of the failure that ended it. Pure functions of their arguments (deterministic)."""

from __future__ import annotations

import asyncio

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState

from jobstream.pipelines import ResolvedStage
from jobstream.workflow_io import JobInput


def retry_policy(stage: ResolvedStage) -> RetryPolicy:
    return RetryPolicy(
        maximum_attempts=stage.retry.maximum_attempts,
        initial_interval=stage.retry.initial_interval,
        backoff_coefficient=stage.retry.backoff_coefficient,
        maximum_interval=stage.retry.maximum_interval,
        non_retryable_error_types=list(stage.retry.non_retryable),
    )


def attempts_used(error: ActivityError, job: JobInput, stage_name: str) -> int:
    """How many attempts a failed stage used, where the failure tells (0 where it does not: a
    non-retryable error can end any attempt, and the failure event does not carry its number)."""
    if error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return next(stage.retry.maximum_attempts for stage in job.stages if stage.name == stage_name)
    return 0


def cancel_requested() -> bool:
    """Whether the workflow was cancelled, even if the await it interrupted completed normally."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def describe(error: FailureError) -> tuple[str, str]:
    """(code, message) of the failure that ended a stage: the application error's type when it has one."""
    if isinstance(error, ApplicationError):
        return error.type or "ApplicationError", error.message
    cause: BaseException | None = error.cause
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "ApplicationError", cause.message
        if isinstance(cause, FailureError) and cause.cause is None:
            return type(cause).__name__, cause.message
        cause = cause.__cause__
    return "ActivityError", str(error)
