import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobstream.v1 import event_pb2 as _event_pb2
from jobstream.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union
from typing import Any as _Any

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    """Request for JobService.SubmitJob."""
    __slots__ = ("pipeline", "prompt", "input_ref", "params", "idempotency_key", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    INPUT_REF_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    pipeline: str
    """Name of the pipeline to run: lowercase letters, digits, `_` and `-`, at most 63 characters.
    Empty means `generate`. An unknown pipeline fails with INVALID_ARGUMENT.
    """
    prompt: str
    """Inline input text (UTF-8, non-empty). Bounded only by the gRPC message size limit
    (4 MiB by default); the service moves a prompt above the claim-check threshold to
    object storage itself.
    """
    input_ref: str
    """Reference to an object uploaded beforehand, exactly as returned by
    `CreateUploadResponse.input_ref`. The upload must exist and belong to the caller.
    """
    params: _job_pb2.GenerationParams
    """Generation parameters; unset fields take the pipeline's defaults."""
    idempotency_key: str
    """Optional client-chosen key, scoped to the caller's tenant, that makes the submission
    idempotent: 1 to 128 printable ASCII characters. The same key with the same request returns
    the original job; the same key with a different request fails with ALREADY_EXISTS.
    Empty means no idempotency.
    """
    metadata: _containers.ScalarMap[str, str]
    """Optional labels kept with the job and returned with it: at most 16 pairs, keys 1 to 64
    characters, values at most 512 (OpenAI's `metadata`).
    """
    def __init__(self, pipeline: _Optional[str] = ..., prompt: _Optional[str] = ..., input_ref: _Optional[str] = ..., params: _Optional[_Union[_job_pb2.GenerationParams, _Mapping[str, _Any]]] = ..., idempotency_key: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    """Response for JobService.SubmitJob."""
    __slots__ = ("job_id", "status", "events_url", "stream_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_URL_FIELD_NUMBER: _ClassVar[int]
    STREAM_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    """Identifier of the (new or, for a repeated idempotency key, existing) job."""
    status: _job_pb2.JobStatus
    """The job's status when the response was sent (JOB_STATUS_QUEUED for a new job)."""
    events_url: str
    """Absolute URL of the job's Server-Sent Events stream, with the stream token already in its
    query string, ready for a browser `EventSource`.
    """
    stream_token: str
    """Signed, job-scoped, time-limited token that authorizes reading this job's event stream
    (and nothing else). Already included in `events_url`.
    """
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[_job_pb2.JobStatus, str]] = ..., events_url: _Optional[str] = ..., stream_token: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    """Request for JobService.GetJob."""
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    """Identifier of the job. Required."""
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    """Response for JobService.GetJob."""
    __slots__ = ("job", "events_url", "stream_token")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENTS_URL_FIELD_NUMBER: _ClassVar[int]
    STREAM_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    """The job's current state."""
    events_url: str
    """The job's Server-Sent Events stream with a fresh stream token in its query string: a client whose
    token expired (`stream_token_ttl_s`, an hour by default) reconnects with this one.
    """
    stream_token: str
    """The fresh stream token, already included in `events_url`."""
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping[str, _Any]]] = ..., events_url: _Optional[str] = ..., stream_token: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    """Request for JobService.ListJobs."""
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    """Maximum number of jobs to return, in [0, 100]; 0 means 20. The server may return fewer."""
    page_token: str
    """`next_page_token` from a previous ListJobs call, to fetch the next page; empty for the
    first page. The other request fields must be the same as in that call.
    """
    status: _job_pb2.JobStatus
    """Only return jobs with this status; JOB_STATUS_UNSPECIFIED means any status."""
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_job_pb2.JobStatus, str]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    """Response for JobService.ListJobs."""
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_job_pb2.Job]
    """The jobs on this page, newest (`create_time`) first."""
    next_page_token: str
    """Token for the next page; empty when there are no more jobs."""
    def __init__(self, jobs: _Optional[_Iterable[_Union[_job_pb2.Job, _Mapping[str, _Any]]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    """Request for JobService.CancelJob."""
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    """Identifier of the job to cancel. Required."""
    reason: str
    """Optional free-text reason, at most 1024 characters; reported in the `job.cancelled` event and in
    `Job.cancel_reason`.
    """
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    """Response for JobService.CancelJob."""
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    """The job's state after the request. Cancellation is asynchronous: the job may still be
    RUNNING until its `job.cancelled` event. Cancelling a job that is already terminal
    changes nothing and returns its state as it is, without its result (GetJob has that).
    """
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping[str, _Any]]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    """Request for JobService.WatchJob."""
    __slots__ = ("job_id", "after")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    """Identifier of the job to watch. Required."""
    after: str
    """Resume cursor: the `id` of the last event already received; the stream continues exactly
    after it. Empty means from the job's first event.
    """
    def __init__(self, job_id: _Optional[str] = ..., after: _Optional[str] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    """One message of the JobService.WatchJob stream."""
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.JobEvent
    """The next event of the job, in order."""
    def __init__(self, event: _Optional[_Union[_event_pb2.JobEvent, _Mapping[str, _Any]]] = ...) -> None: ...

class CreateUploadRequest(_message.Message):
    """Request for JobService.CreateUpload."""
    __slots__ = ("ttl",)
    TTL_FIELD_NUMBER: _ClassVar[int]
    ttl: _duration_pb2.Duration
    """How long the upload URL stays valid. Unset or zero means 15 minutes; at most 7 days."""
    def __init__(self, ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping[str, _Any]]] = ...) -> None: ...

class CreateUploadResponse(_message.Message):
    """Response for JobService.CreateUpload."""
    __slots__ = ("upload_url", "input_ref", "expire_time", "upload_fields")
    class UploadFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    UPLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    INPUT_REF_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELDS_FIELD_NUMBER: _ClassVar[int]
    upload_url: str
    """URL to which the client POSTs the input before `expire_time`, as an HTML form upload
    (multipart/form-data): every field of `upload_fields`, then the bytes as the field `file`. The
    signed policy bounds the size: an upload of 0 bytes or over the service's maximum input size is
    refused by the store.
    """
    input_ref: str
    """Opaque reference to the uploaded object; pass it as `SubmitJobRequest.input_ref`. SubmitJob
    takes a copy of what was uploaded: a later upload to the same URL changes no job.
    """
    expire_time: _timestamp_pb2.Timestamp
    """When `upload_url` stops accepting uploads."""
    upload_fields: _containers.ScalarMap[str, str]
    """The signed form fields the POST to `upload_url` must carry (`key`, `policy`, the signature)."""
    def __init__(self, upload_url: _Optional[str] = ..., input_ref: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping[str, _Any]]] = ..., upload_fields: _Optional[_Mapping[str, str]] = ...) -> None: ...
