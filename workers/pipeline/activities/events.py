"""Publishing the workflow's own events (job and stage transitions) to the job's event log."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import activity

from jobstream.events import EventLog
from jobstream.payload_store import PayloadStore
from jobstream.v1.event_pb2 import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobStarted,
    StageEvent,
)
from jobstream.v1.job_pb2 import JobError
from workers.pipeline.types import EventSpec


class EventActivities:
    def __init__(self, log: EventLog, store: PayloadStore) -> None:
        self.log = log
        self.store = store

    @activity.defn(name="publish_event")
    async def publish_event(self, spec: EventSpec) -> list[int]:
        """Publish and return [partition, offset]: readers start a job's replay at its first event."""
        published = await self.log.publish(await self.to_proto(spec))
        return [published.partition, published.offset]

    async def to_proto(self, spec: EventSpec) -> JobEvent:
        now = Timestamp()
        now.GetCurrentTime()
        event = JobEvent(id=spec.cursor, job_id=spec.job_id, type=spec.type, time=now)
        if spec.type == "job.started":
            event.job_started.CopyFrom(JobStarted(pipeline=spec.pipeline, stages=spec.stages))
        elif spec.type in ("stage.started", "stage.completed"):
            event.stage.CopyFrom(
                StageEvent(
                    stage=spec.stage,
                    stage_index=spec.stage_index,
                    stage_count=spec.stage_count,
                    attempt=max(spec.attempt, 1),
                )
            )
        elif spec.type == "job.completed":
            completed = JobCompleted(tokens_generated=spec.tokens)
            if spec.result_ref:
                completed.result_url = await self.store.presigned_get(spec.result_ref)
            else:
                completed.result_text = spec.result_text or ""
            event.job_completed.CopyFrom(completed)
        elif spec.type == "job.failed":
            error = JobError(code=spec.error_code, message=spec.error_message)
            event.job_failed.CopyFrom(JobFailed(error=error, stage=spec.stage))
        elif spec.type == "job.cancelled":
            event.job_cancelled.CopyFrom(
                JobCancelled(reason=spec.reason, stage=spec.stage, tokens_generated=spec.tokens)
            )
        else:
            raise ValueError(f"unknown event type {spec.type!r}")
        return event
