import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union
from typing import Any as _Any

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    """The lifecycle status of a job. A job moves QUEUED -> RUNNING -> one of the
    terminal statuses SUCCEEDED, FAILED or CANCELLED, and never leaves a terminal status.
    """
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    """Not a status a job can have. As a ListJobs filter it means "any status"."""
    JOB_STATUS_QUEUED: _ClassVar[JobStatus]
    """Accepted and durably recorded; no stage has started yet."""
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    """At least one stage has started and the job has not finished."""
    JOB_STATUS_SUCCEEDED: _ClassVar[JobStatus]
    """Terminal: every stage finished and the result is available."""
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    """Terminal: a stage failed after its retries were exhausted, or the job timed out; see `Job.error`."""
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]
    """Terminal: the job was cancelled with CancelJob before it finished."""

class StageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    """Where one stage of a job is in its life."""
    __slots__ = ()
    STAGE_STATE_UNSPECIFIED: _ClassVar[StageState]
    """Not a state a stage can have."""
    STAGE_STATE_PENDING: _ClassVar[StageState]
    """Not started yet."""
    STAGE_STATE_RUNNING: _ClassVar[StageState]
    """Running (possibly in a retry: see `JobStage.attempts`)."""
    STAGE_STATE_SUCCEEDED: _ClassVar[StageState]
    """Finished; its output went to the next stage (or is the result)."""
    STAGE_STATE_FAILED: _ClassVar[StageState]
    """Failed after its retries; the job failed with it."""
    STAGE_STATE_CANCELLED: _ClassVar[StageState]
    """Stopped because the job was cancelled while it ran."""
JOB_STATUS_UNSPECIFIED: JobStatus
"""Not a status a job can have. As a ListJobs filter it means "any status"."""
JOB_STATUS_QUEUED: JobStatus
"""Accepted and durably recorded; no stage has started yet."""
JOB_STATUS_RUNNING: JobStatus
"""At least one stage has started and the job has not finished."""
JOB_STATUS_SUCCEEDED: JobStatus
"""Terminal: every stage finished and the result is available."""
JOB_STATUS_FAILED: JobStatus
"""Terminal: a stage failed after its retries were exhausted, or the job timed out; see `Job.error`."""
JOB_STATUS_CANCELLED: JobStatus
"""Terminal: the job was cancelled with CancelJob before it finished."""
STAGE_STATE_UNSPECIFIED: StageState
"""Not a state a stage can have."""
STAGE_STATE_PENDING: StageState
"""Not started yet."""
STAGE_STATE_RUNNING: StageState
"""Running (possibly in a retry: see `JobStage.attempts`)."""
STAGE_STATE_SUCCEEDED: StageState
"""Finished; its output went to the next stage (or is the result)."""
STAGE_STATE_FAILED: StageState
"""Failed after its retries; the job failed with it."""
STAGE_STATE_CANCELLED: StageState
"""Stopped because the job was cancelled while it ran."""

class JobError(_message.Message):
    """Why a job failed. Also used by the `job.failed` event."""
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    """Stable, machine-readable reason in UpperCamelCase, the error type that ended the job (for example
    `InvalidInput`, `GpuOutOfMemory`, `TritonUnavailable`). Clients may branch on it; it never contains
    free text.
    """
    message: str
    """Human-readable explanation for logs and users. Not stable; do not parse it."""
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GenerationParams(_message.Message):
    """Parameters that control text generation. Fields left unset take the pipeline's defaults."""
    __slots__ = ("max_tokens", "temperature", "seed", "top_p", "stop")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    """Upper bound on the number of tokens to generate. 0 means the pipeline's default;
    negative values, and values above the pipeline's limit, are rejected with INVALID_ARGUMENT.
    """
    temperature: float
    """Sampling temperature in [0.0, 2.0]. 0.0 means greedy decoding, which is why presence
    is tracked: unset means the pipeline's default, not 0.0.
    """
    seed: int
    """Seed for the sampler; the same seed, prompt and parameters give the same output.
    0 is a valid seed, distinct from unset (unset means a seed chosen by the server).
    """
    top_p: float
    """Nucleus sampling: sample from the likeliest tokens whose probabilities add up to `top_p`, in
    (0.0, 1.0]. Unset means 1.0 (every token).
    """
    stop: _containers.RepeatedScalarFieldContainer[str]
    """Stop sequences, at most 4, each 1 to 64 characters: generation stops before the first one it would
    produce, which is not part of the output (`finish_reason` is then `stop`).
    """
    def __init__(self, max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., seed: _Optional[int] = ..., top_p: _Optional[float] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class Usage(_message.Message):
    """Tokens as a job is billed, summed over its model stages: every attempt's prompt counts (a retry reads
    its prompt again), and each output token counts once, as delivered.
    """
    __slots__ = ("prompt_tokens", "output_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    """Tokens the models read, over every attempt."""
    output_tokens: int
    """Tokens the models delivered."""
    def __init__(self, prompt_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class Job(_message.Message):
    """A durable inference job: one run of a pipeline over one input.
    Returned by GetJob, CancelJob and ListJobs.
    """
    __slots__ = ("job_id", "pipeline", "status", "stage", "progress", "stages_completed", "stage_count", "tokens_generated", "attempt", "create_time", "update_time", "result_text", "result_url", "error", "stages", "cancel_reason", "usage", "finish_reason", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STAGES_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    STAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_TEXT_FIELD_NUMBER: _ClassVar[int]
    RESULT_URL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    """Server-assigned identifier of the job; also the id of its Temporal workflow.
    Opaque, URL-safe, at most 128 characters.
    """
    pipeline: str
    """Name of the pipeline the job runs (for example `generate`)."""
    status: JobStatus
    """Current lifecycle status."""
    stage: str
    """Name of the stage currently running, or of the last stage that ran once the job is
    terminal. Empty while the job is QUEUED.
    """
    progress: float
    """Fraction of stages finished, in [0.0, 1.0]: `stages_completed / stage_count`
    (0.0 when `stage_count` is 0). It is 1.0 only once every stage has finished.
    """
    stages_completed: int
    """Number of stages that have finished successfully; finished stages are never re-run."""
    stage_count: int
    """Total number of stages in the job's pipeline."""
    tokens_generated: int
    """Number of output tokens generated so far (the final count once the job is terminal)."""
    attempt: int
    """1-based attempt number of the stage currently running (or last run); greater than 1
    after a retry, for example after a GPU worker crashed. 0 while the job is QUEUED.
    """
    create_time: _timestamp_pb2.Timestamp
    """When the job was submitted."""
    update_time: _timestamp_pb2.Timestamp
    """When the job's status, stage, progress or result last changed."""
    result_text: str
    """The generated text, inline, when it is under the claim-check threshold."""
    result_url: str
    """A URL (presigned, time-limited) from which to download an output too large to inline."""
    error: JobError
    """Why the job failed. Set only when `status` is JOB_STATUS_FAILED."""
    stages: _containers.RepeatedCompositeFieldContainer[JobStage]
    """The stages of the job's pipeline in order, each as it ran so far: a finished job still shows that a
    stage needed a retry. Empty for a job started before the server recorded stages.
    """
    cancel_reason: str
    """The reason given to CancelJob. Set only when `status` is JOB_STATUS_CANCELLED (and may be empty)."""
    usage: Usage
    """What the job's model stages used so far."""
    finish_reason: str
    """Why generation stopped, as the last model stage that ended says: `length` (max_tokens reached),
    `stop` (a stop sequence, or the model's own end) or `cancelled`. Empty until a model stage ended.
    """
    metadata: _containers.ScalarMap[str, str]
    """The labels the job was submitted with (`SubmitJobRequest.metadata`)."""
    def __init__(self, job_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., stage: _Optional[str] = ..., progress: _Optional[float] = ..., stages_completed: _Optional[int] = ..., stage_count: _Optional[int] = ..., tokens_generated: _Optional[int] = ..., attempt: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping[str, _Any]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping[str, _Any]]] = ..., result_text: _Optional[str] = ..., result_url: _Optional[str] = ..., error: _Optional[_Union[JobError, _Mapping[str, _Any]]] = ..., stages: _Optional[_Iterable[_Union[JobStage, _Mapping[str, _Any]]]] = ..., cancel_reason: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping[str, _Any]]] = ..., finish_reason: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class JobStage(_message.Message):
    """One stage of a job: what it is, how it ran, and how many attempts it took."""
    __slots__ = ("name", "kind", "state", "attempts", "start_time", "end_time", "tokens_generated", "prompt_tokens", "finish_reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOKENS_GENERATED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    """The stage's name in the pipeline (for example `generate`)."""
    kind: str
    """`preprocess`, `model` or `postprocess`."""
    state: StageState
    """Where the stage is in its life."""
    attempts: int
    """Attempts started so far: 1 normally, more after retries (for example after a GPU worker crashed).
    0 while the stage is pending; for a stage that failed with a non-retryable error it counts the
    attempts known to the server, at least 1.
    """
    start_time: _timestamp_pb2.Timestamp
    """When the stage's first attempt was scheduled; unset while pending."""
    end_time: _timestamp_pb2.Timestamp
    """When the stage finished, failed or was cancelled; unset until then."""
    tokens_generated: int
    """Tokens the stage generated (model stages; 0 for the others). Live while the stage runs."""
    prompt_tokens: int
    """Prompt tokens the stage's model read, over its attempts (model stages)."""
    finish_reason: str
    """Why the stage's model stopped (`length`, `stop`, `cancelled`); empty until it has."""
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[StageState, str]] = ..., attempts: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping[str, _Any]]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping[str, _Any]]] = ..., tokens_generated: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ...) -> None: ...
