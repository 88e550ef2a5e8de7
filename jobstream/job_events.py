"""The job's own events (everything but tokens) as protobufs: one builder, used by the workflow's publish
activity and by the readers that rebuild a finished job's terminal event from its final state."""

from __future__ import annotations

from typing import assert_never

from google.protobuf.timestamp_pb2 import Timestamp

from jobstream.payload_store import PayloadStore
from jobstream.v1.event_pb2 import JobCancelled, JobCompleted, JobEvent, JobFailed, JobStarted, StageEvent
from jobstream.v1.job_pb2 import Job, JobError
from jobstream.v1.job_pb2 import Usage as UsageProto
from jobstream.workflow_io import (
    EventSpec,
    JobCancelledSpec,
    JobCompletedSpec,
    JobFailedSpec,
    JobStartedSpec,
    StageCompletedSpec,
    StageStartedSpec,
    Usage,
)


def usage_proto(usage: Usage) -> UsageProto:
    return UsageProto(prompt_tokens=usage.prompt_tokens, output_tokens=usage.output_tokens)


async def set_result(target: Job | JobCompleted, text: str | None, ref: str | None, store: PayloadStore) -> None:
    """A result in MinIO is handed out as a presigned URL; any other is inline text."""
    if ref:
        target.result_url = await store.presigned_get(ref)
    else:
        target.result_text = text or ""


async def with_fresh_result_url(event: JobEvent, store: PayloadStore) -> JobEvent:
    """`event`, or a copy whose result URL is signed again when it has (almost) expired: job.completed is
    replayed from the log long after the URL it was published with stopped working."""
    if event.WhichOneof("payload") != "job_completed" or event.job_completed.WhichOneof("result") != "result_url":
        return event
    url = await store.fresh_url(event.job_completed.result_url)
    if url == event.job_completed.result_url:
        return event
    fresh = JobEvent()
    fresh.CopyFrom(event)
    fresh.job_completed.result_url = url
    return fresh


async def build_event(spec: EventSpec, store: PayloadStore) -> JobEvent:
    stamp = Timestamp()
    if spec.time is None:
        stamp.GetCurrentTime()
    else:
        stamp.FromDatetime(spec.time)
    event = JobEvent(id=spec.cursor, job_id=spec.job_id, type=spec.type, time=stamp)
    match spec:
        case JobStartedSpec():
            event.job_started.CopyFrom(JobStarted(pipeline=spec.pipeline, stages=spec.stages))
        case StageStartedSpec() | StageCompletedSpec():
            attempt = max(spec.attempt, 1)
            stage = StageEvent(
                stage=spec.stage, stage_index=spec.stage_index, stage_count=spec.stage_count, attempt=attempt
            )
            event.stage.CopyFrom(stage)
        case JobCompletedSpec():
            completed = JobCompleted(
                tokens_generated=spec.tokens, usage=usage_proto(spec.usage), finish_reason=spec.finish_reason
            )
            await set_result(completed, spec.result_text, spec.result_ref, store)
            event.job_completed.CopyFrom(completed)
        case JobFailedSpec():
            error = JobError(code=spec.error_code, message=spec.error_message)
            event.job_failed.CopyFrom(JobFailed(error=error, stage=spec.stage, usage=usage_proto(spec.usage)))
        case JobCancelledSpec():
            cancelled = JobCancelled(
                reason=spec.reason,
                stage=spec.stage,
                tokens_generated=spec.tokens,
                usage=usage_proto(spec.usage),
                finish_reason=spec.finish_reason,
            )
            event.job_cancelled.CopyFrom(cancelled)
        case _:
            assert_never(spec)
    return event
