"""The JobService's operations in the domain's terms, for one authenticated caller at a time: they take checked
values, answer jobs and raise errors.Refused. service.py translates protobufs to these calls and back;
interceptors.py maps the refusals to status codes. Authorizing a job (is it the caller's?) is apart from
building its view, so CancelJob and WatchJob read no result and presign no URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from jobstream import cursors
from jobstream.auth import Caller
from jobstream.event_hub import EventHub, SlowConsumerError
from jobstream.job_events import with_fresh_result_url
from jobstream.job_state import STATUS_QUERY, JobMemo, Status, verdict_recorded
from jobstream.logs import bind_job
from jobstream.partitioning import partition_of
from jobstream.payload_store import UPLOADS_RETENTION_DAYS, PayloadStore
from jobstream.pipelines import Pipelines
from jobstream.search_attributes import tenant_term
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamTokens
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.event_pb2 import JobEvent
from jobstream.v1.job_pb2 import Job
from jobstream.workflow_io import CANCEL_REASON_SIGNAL, JOB_WORKFLOWS
from services.job_service import job_view, listing, validation
from services.job_service.errors import InvalidField, JobNotFound, OverLimit
from services.job_service.job_reader import JobReader
from services.job_service.submission import Accepted, Submission, limits_of
from services.job_service.uploads import Uploads

MAX_CANCEL_REASON = 1024


@dataclass(frozen=True)
class EventsLink:
    """Where the job's events can be followed over SSE, and the token that opens them."""

    events_url: str
    token: str


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_token: str


class Jobs:
    def __init__(
        self, settings: Settings, client: Client, store: PayloadStore, pipelines: Pipelines, hub: EventHub
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.hub = hub
        self.tokens = StreamTokens(settings)
        self.uploads = Uploads(store, settings, pipelines)
        self.submission = Submission(settings, client, store, pipelines, self.uploads)
        self.reader = JobReader(client, store)

    async def submit(self, caller: Caller, valid: validation.ValidSubmit, fingerprint: str) -> Accepted:
        return await self.submission.submit(caller, valid, fingerprint)

    async def owned(self, caller: Caller, job_id: str) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
        """The job's workflow, if it exists and is the caller's; JobNotFound otherwise (no leak)."""
        validation.check_job_id(job_id)
        bind_job(job_id)
        found = await self.reader.owned(caller.tenant, job_id)
        if found is None:
            raise JobNotFound(job_id)
        return found

    async def get(self, caller: Caller, job_id: str) -> Job:
        """The caller's job with its running stage's progress and, once it succeeded, its result."""
        _, description = await self.owned(caller, job_id)
        return await self.reader.view(job_id, description, with_result=True)

    async def cancel(self, caller: Caller, job_id: str, reason: str) -> Job:
        """Asks the job to cancel (its job.cancelled event says when it has); its state as it is now."""
        if len(reason) > MAX_CANCEL_REASON:
            raise InvalidField("reason", f"must be at most {MAX_CANCEL_REASON} characters")
        handle, description = await self.owned(caller, job_id)
        job = await self.reader.view(job_id, description, with_result=False)
        # Not once the workflow has recorded its verdict: it is only publishing the terminal event then.
        if not verdict_recorded(description.status, JobMemo.parse(await description.memo())):
            if reason:
                await self.tell_cancel_reason(handle, reason)
            try:
                await handle.cancel()
            except RPCError as exc:
                # It ended between the check and the cancel: there is nothing left to cancel.
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        return job

    async def tell_cancel_reason(self, handle: WorkflowHandle[Any, Any], reason: str) -> None:
        """The reason reaches the workflow as a signal just before the cancel, so job.cancelled carries it."""
        try:
            await handle.signal(CANCEL_REASON_SIGNAL, reason)
        except RPCError as exc:
            # The job closed between the check and the signal: there is nothing left to cancel.
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise

    async def list(self, caller: Caller, status: Status | None, page_size: int, page_token: str) -> Page:
        """The caller's jobs, newest first, optionally of one status; a page and the token of the next."""
        page_size = validation.check_page_size(page_size)
        try:
            cursor = listing.Cursor.decode(page_token, status or "") if page_token else None
        except listing.BadPageToken as exc:
            raise InvalidField("page_token", str(exc)) from exc
        query = f"{JOB_WORKFLOWS} AND {tenant_term(caller.tenant)}"
        if status:
            query += f" AND {STATUS_QUERY[status]}"
        executions, next_token = await listing.newest_first(self.client, query, page_size, cursor, status or "")
        return Page([await job_view.job_view(execution) for execution in executions], next_token)

    async def watch(self, caller: Caller, job_id: str, after: str) -> AsyncIterator[JobEvent]:
        """The job's events after `after` (from its start when empty), live until its terminal event."""
        if after and not cursors.is_valid(after):
            raise InvalidField("after", "is not an event id from this job's stream")
        await self.owned(caller, job_id)  # the stream says everything else
        try:
            async for event in self.hub.watch(job_id, after, owner=caller.tenant):
                yield await with_fresh_result_url(event, self.store)
        except SlowConsumerError as exc:
            raise OverLimit(str(exc)) from exc

    async def create_upload(self, caller: Caller, ttl: timedelta) -> api.CreateUploadResponse:
        """A presigned POST for one input; refused while the tenant holds its limit of uploads."""
        limit = limits_of(caller, self.settings).max_uploads
        if limit and (held := await self.uploads.held(caller.tenant, limit)) >= limit:
            raise OverLimit(
                f"tenant {caller.tenant} holds {held} uploads, its limit (max_uploads {limit}); submit them or "
                f"wait for them to expire ({UPLOADS_RETENTION_DAYS} day after upload)"
            )
        return await self.uploads.grant(caller.tenant, ttl)

    def events_link(self, caller: Caller, job_id: str) -> EventsLink:
        """The job's SSE URL with a fresh stream token in it: signed for the caller's API key, so it stops
        working when that key is revoked. The URL names the job's events partition, which the edge routes by
        to the bridge replica that tails it (the bridge derives it again from the job id)."""
        token = self.tokens.issue(job_id, caller.tenant, caller.key_id)
        partition = partition_of(job_id, self.settings.events_partitions)
        return EventsLink(
            f"{self.settings.bridge_url}/v1/jobs/{job_id}/events?partition={partition}&token={token}", token
        )
