import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobstream.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union
from typing import Any as _Any

DESCRIPTOR: _descriptor.FileDescriptor

class JobEvent(_message.Message):
    """One event in a job's event stream. The same message, with the same `id`, is written to
    Kafka by the workers, served as Server-Sent Events by the SSE bridge (`GET
    /v1/jobs/{job_id}/events`, SSE `event:` = `type`, SSE `id:` = `id`) and streamed by
    JobService.WatchJob. Events of one job are delivered in order; the stream ends after
    a terminal event (`job.completed`, `job.failed` or `job.cancelled`).
    """
    __slots__ = ("id", "job_id", "type", "time", "job_started", "stage", "token", "job_completed", "job_failed", "job_cancelled")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_STARTED_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    JOB_FAILED_FIELD_NUMBER: _ClassVar[int]
    JOB_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    id: str
    """Resumable cursor of this event, unique within the job's stream. Opaque to clients: pass it
    back as `WatchJobRequest.after`, the SSE `Last-Event-ID` header or `?after=` to resume the
    stream exactly after this event. At most 128 characters.
    """
    job_id: str
    """Identifier of the job the event belongs to."""
    type: str
    """Event type, exactly the SSE event name. One of:
      `job.started`     (payload `job_started`)
      `stage.started`   (payload `stage`)
      `stage.completed` (payload `stage`)
      `token`           (payload `token`)
      `job.completed`   (payload `job_completed`)
      `job.failed`      (payload `job_failed`)
      `job.cancelled`   (payload `job_cancelled`)
    Clients must ignore events whose type they do not know.
    """
    time: _timestamp_pb2.Timestamp
    """When the event happened (set by the producer, not by the transport)."""
    job_started: JobStarted
    """Set for `job.started`."""
    stage: StageEvent
    """Set for `stage.started` and `stage.completed`."""
    token: TokenEvent
    """Set for `token`."""
    job_completed: JobCompleted
    """Set for `job.completed`."""
    job_failed: JobFailed
    """Set for `job.failed`."""
    job_cancelled: JobCancelled
    """Set for `job.cancelled`."""
    def __init__(self, id: _Optional[str] = ..., job_id: _Optional[str] = ..., type: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping[str, _Any]]] = ..., job_started: _Optional[_Union[JobStarted, _Mapping[str, _Any]]] = ..., stage: _Optional[_Union[StageEvent, _Mapping[str, _Any]]] = ..., token: _Optional[_Union[TokenEvent, _Mapping[str, _Any]]] = ..., job_completed: _Optional[_Union[JobCompleted, _Mapping[str, _Any]]] = ..., job_failed: _Optional[_Union[JobFailed, _Mapping[str, _Any]]] = ..., job_cancelled: _Optional[_Union[JobCancelled, _Mapping[str, _Any]]] = ...) -> None: ...

class JobStarted(_message.Message):
    """Payload of `job.started`: the job's workflow began running its pipeline."""
    __slots__ = ("pipeline", "stages")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    pipeline: str
    """Name of the pipeline the job runs."""
    stages: _containers.RepeatedScalarFieldContainer[str]
    """Names of the pipeline's stages, in execution order."""
    def __init__(self, pipeline: _Optional[str] = ..., stages: _Optional[_Iterable[str]] = ...) -> None: ...

class StageEvent(_message.Message):
    """Payload of `stage.started` and `stage.completed`: a pipeline stage began or finished."""
    __slots__ = ("stage", "stage_index", "stage_count", "attempt")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    STAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    stage: str
    """Name of the stage (for example `preprocess`, `generate`, `postprocess`)."""
    stage_index: int
    """0-based position of the stage in the pipeline, in [0, stage_count)."""
    stage_count: int
    """Total number of stages in the pipeline."""
    attempt: int
    """1-based attempt number of the stage; greater than 1 when the stage is retried."""
    def __init__(self, stage: _Optional[str] = ..., stage_index: _Optional[int] = ..., stage_count: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class TokenEvent(_message.Message):
    """Payload of `token`: one piece of generated output. Every index is delivered exactly once,
    in increasing order without gaps, across worker crashes, retries and reconnects; the
    concatenation of all token texts in index order equals the job's final generated text.
    """
    __slots__ = ("index", "text", "stage")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    """0-based position of the token in the job's output."""
    text: str
    """The token's text (UTF-8; may be empty or a partial word)."""
    stage: str
    """Name of the stage that generated the token."""
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class JobCompleted(_message.Message):
    """Payload of `job.completed`: the job finished successfully (terminal)."""
    __slots__ = ("result_text", "result_url", "tokens_generated", "usage", "finish_reason")
    RESULT_TEXT_FIELD_NUMBER: _ClassVar[int]
    RESULT_URL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    result_text: str
    """The generated text, inline, when it is under the claim-check threshold."""
    result_url: str
    """A URL (presigned, time-limited) from which to download an output too large to inline."""
    tokens_generated: int
    """Total number of output tokens generated."""
    usage: _job_pb2.Usage
    """What the job's model stages used; same as `Job.usage`."""
    finish_reason: str
    """Why generation stopped; same as `Job.finish_reason`."""
    def __init__(self, result_text: _Optional[str] = ..., result_url: _Optional[str] = ..., tokens_generated: _Optional[int] = ..., usage: _Optional[_Union[_job_pb2.Usage, _Mapping[str, _Any]]] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class JobFailed(_message.Message):
    """Payload of `job.failed`: the job failed (terminal)."""
    __slots__ = ("error", "stage", "usage")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    error: _job_pb2.JobError
    """Why the job failed; same as `Job.error`."""
    stage: str
    """Name of the stage that failed; empty if the job failed before any stage started."""
    usage: _job_pb2.Usage
    """What the job's model stages that finished used."""
    def __init__(self, error: _Optional[_Union[_job_pb2.JobError, _Mapping[str, _Any]]] = ..., stage: _Optional[str] = ..., usage: _Optional[_Union[_job_pb2.Usage, _Mapping[str, _Any]]] = ...) -> None: ...

class JobCancelled(_message.Message):
    """Payload of `job.cancelled`: the job was cancelled (terminal)."""
    __slots__ = ("reason", "stage", "tokens_generated", "usage", "finish_reason")
    REASON_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    """The reason given to CancelJob; may be empty."""
    stage: str
    """Name of the stage that was running when the job was cancelled; empty if none was."""
    tokens_generated: int
    """Number of output tokens generated before the cancellation took effect."""
    usage: _job_pb2.Usage
    """What the job used up to the cancellation (the tokens delivered before it)."""
    finish_reason: str
    """`cancelled` if generation was cut short, else why the last model stage stopped."""
    def __init__(self, reason: _Optional[str] = ..., stage: _Optional[str] = ..., tokens_generated: _Optional[int] = ..., usage: _Optional[_Union[_job_pb2.Usage, _Mapping[str, _Any]]] = ..., finish_reason: _Optional[str] = ...) -> None: ...
