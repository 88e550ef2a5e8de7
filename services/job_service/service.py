"""The gRPC JobService: accept a job at once, report it, list, cancel and watch it, per tenant."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from jobstream import cursors
from jobstream.event_hub import EventHub, SlowConsumerError
from jobstream.job_events import with_fresh_result_url
from jobstream.job_state import STATUS_QUERY, JobMemo, Status, verdict_recorded
from jobstream.keys_store import KeysFileError
from jobstream.logs import bind_job
from jobstream.partitioning import partition_of
from jobstream.payload_store import UPLOADS_RETENTION_DAYS, PayloadStore, StoredObject
from jobstream.pipelines import Pipelines
from jobstream.search_attributes import tenant_term
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamTokens
from jobstream.tenants import TenantLimits, limits_in
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from jobstream.v1.job_service_pb2_grpc import JobServiceServicer
from jobstream.workflow_io import (
    CANCEL_REASON_SIGNAL,
    JOB_WORKFLOWS,
)
from services.job_service import job_view, listing, validation
from services.job_service.auth_interceptor import CALLER, UNAUTHENTICATED
from services.job_service.job_reader import JobReader
from services.job_service.job_start import Submitted, input_size, start_job
from services.job_service.quotas import OverQuota, RunningJobs
from services.job_service.uploads import Uploads, upload_ttl
from services.job_service.validation import RequestError, abort, invalid

log = logging.getLogger(__name__)


class JobService(JobServiceServicer):
    def __init__(
        self,
        settings: Settings,
        client: Client,
        store: PayloadStore,
        pipelines: Pipelines,
        hub: EventHub,
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.pipelines = pipelines
        self.tokens = StreamTokens(settings)
        self.hub = hub
        self.running = RunningJobs(client, replicas=settings.replicas)
        self.uploads = Uploads(store, settings, pipelines)
        self.reader = JobReader(client, store)

    # -- authentication -------------------------------------------------------------------------------
    async def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The caller's tenant, which AuthInterceptor established before the request was parsed."""
        caller = CALLER.get(None)
        if caller is None:  # served without the interceptor: refuse rather than guess
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)
        assert caller is not None
        return caller.tenant

    async def owned(
        self, context: grpc.aio.ServicerContext[Any, Any], tenant: str, job_id: str
    ) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
        """The job's workflow, if it exists and belongs to the caller; NOT_FOUND otherwise (no leak)."""
        try:
            validation.check_job_id(job_id)
        except RequestError as error:
            await abort(context, error)
        bind_job(job_id)
        found = await self.reader.owned(tenant, job_id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {job_id} not found")
        assert found is not None
        return found

    # -- RPCs -----------------------------------------------------------------------------------------
    async def SubmitJob(
        self,
        request: api.SubmitJobRequest,
        context: grpc.aio.ServicerContext[api.SubmitJobRequest, api.SubmitJobResponse],
    ) -> api.SubmitJobResponse:
        tenant = await self.authenticate(context)
        try:
            valid = validation.check_submit(request, self.pipelines, self.settings)
        except RequestError as error:
            await abort(context, error)
        fingerprint = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
        if valid.idempotency_key:
            job_id = job_view.idempotent_job_id(tenant, valid.idempotency_key)
            bind_job(job_id)
            # Same key and same request → same job, whether it is still running or long finished: answered
            # before the quota is asked or the input copied, so a retry costs neither.
            try:
                description = await self.client.get_workflow_handle(job_id).describe()
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            else:
                return await self.existing(context, description, fingerprint, job_id, tenant)
        else:
            job_id = job_view.new_job_id()
        bind_job(job_id)
        try:
            upload = await self.uploads.checked(tenant, valid) if valid.input_ref else None
        except RequestError as error:
            await abort(context, error)
        try:
            limits = await self.limits(context, tenant)
            async with self.running.reserve(tenant, limits, input_size(valid, upload)):
                return await self.start(context, tenant, job_id, valid, fingerprint, limits, upload)
        except OverQuota as over:
            held = "jobs running" if over.limit_name == "max_running_jobs" else "bytes of input in running jobs"
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"tenant {tenant} has {over.held} {held}, its limit ({over.limit_name} {over.limit}); "
                "submit again when one has ended",
            )
            raise AssertionError("unreachable") from over  # abort raises

    async def start(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        tenant: str,
        job_id: str,
        valid: validation.ValidSubmit,
        fingerprint: str,
        limits: TenantLimits,
        upload: StoredObject | None,
    ) -> api.SubmitJobResponse:
        """The job's input stored where the job reads it, and its workflow started (inside the quota's place)."""
        input_ref = None
        if valid.input_ref and upload:
            try:
                input_ref = await self.uploads.pinned(tenant, valid.input_ref, upload)
            except RequestError as error:
                await abort(context, error)
        try:
            await start_job(
                self.client,
                self.store,
                self.pipelines,
                self.settings,
                Submitted(
                    tenant=tenant,
                    job_id=job_id,
                    valid=valid,
                    fingerprint=fingerprint,
                    input_ref=input_ref,
                    input_bytes=input_size(valid, upload),
                    fairness_weight=limits.fairness_weight,
                ),
            )
        except WorkflowAlreadyStartedError:
            # Two identical submissions raced; the loser answers with the winner's job.
            description = await self.client.get_workflow_handle(job_id).describe()
            return await self.existing(context, description, fingerprint, job_id, tenant)
        return self.submitted(job_id, tenant, JobStatus.JOB_STATUS_QUEUED)

    async def existing(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        description: WorkflowExecutionDescription,
        fingerprint: str,
        job_id: str,
        tenant: str,
    ) -> api.SubmitJobResponse:
        memo = JobMemo.parse(await description.memo())
        if memo.fingerprint != fingerprint:
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"idempotency_key: already used for job {job_id} with a different request",
            )
        job = await job_view.job_view(description)
        return self.submitted(job_id, tenant, job.status)

    def submitted(self, job_id: str, tenant: str, status: JobStatus) -> api.SubmitJobResponse:
        events_url, token = self.stream_grant(job_id, tenant)
        return api.SubmitJobResponse(job_id=job_id, status=status, events_url=events_url, stream_token=token)

    def stream_grant(self, job_id: str, tenant: str) -> tuple[str, str]:
        """The job's SSE URL with a fresh stream token in it, and the token: signed for the caller's API key, so
        it stops working when that key is revoked. The URL names the job's events partition, which the edge
        routes by to the bridge replica that tails it (the bridge derives it again from the job id)."""
        token = self.tokens.issue(job_id, tenant, CALLER.get().key_id)
        partition = partition_of(job_id, self.settings.events_partitions)
        return f"{self.settings.bridge_url}/v1/jobs/{job_id}/events?partition={partition}&token={token}", token

    async def limits(self, context: grpc.aio.ServicerContext[Any, Any], tenant: str) -> TenantLimits:
        """The tenant's limits, from the keys file as the interceptor read it for this call (not read again)."""
        try:
            return limits_in(CALLER.get().keys_file, self.settings, tenant)
        except KeysFileError as exc:
            log.error("%s", exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the tenants' limits cannot be read; retry shortly")
            raise AssertionError("unreachable") from exc  # abort raises

    async def check_uploads(self, context: grpc.aio.ServicerContext[Any, Any], tenant: str) -> None:
        """RESOURCE_EXHAUSTED for a tenant that holds its limit of uploads already (they expire after a day)."""
        limit = (await self.limits(context, tenant)).max_uploads
        if limit and (held := await self.uploads.held(tenant, limit)) >= limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"tenant {tenant} holds {held} uploads, its limit (max_uploads {limit}); submit them or wait "
                f"for them to expire ({UPLOADS_RETENTION_DAYS} day after upload)",
            )

    async def tell_cancel_reason(self, handle: WorkflowHandle[Any, Any], reason: str) -> None:
        """The reason reaches the workflow as a signal just before the cancel, so job.cancelled carries it."""
        try:
            await handle.signal(CANCEL_REASON_SIGNAL, reason)
        except RPCError as exc:
            # The job closed between the check and the signal: there is nothing left to cancel.
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise

    async def GetJob(
        self, request: api.GetJobRequest, context: grpc.aio.ServicerContext[api.GetJobRequest, api.GetJobResponse]
    ) -> api.GetJobResponse:
        tenant = await self.authenticate(context)
        _, description = await self.owned(context, tenant, request.job_id)
        job = await self.reader.view(request.job_id, description)
        events_url, token = self.stream_grant(request.job_id, tenant)
        return api.GetJobResponse(job=job, events_url=events_url, stream_token=token)

    async def CancelJob(
        self,
        request: api.CancelJobRequest,
        context: grpc.aio.ServicerContext[api.CancelJobRequest, api.CancelJobResponse],
    ) -> api.CancelJobResponse:
        tenant = await self.authenticate(context)
        if len(request.reason) > 1024:
            await abort(context, invalid("reason", "must be at most 1024 characters"))
        handle, description = await self.owned(context, tenant, request.job_id)
        job = await self.reader.view(request.job_id, description)
        # Not once the workflow has recorded its verdict: it is only publishing the terminal event then.
        if not verdict_recorded(description.status, JobMemo.parse(await description.memo())):
            if request.reason:
                await self.tell_cancel_reason(handle, request.reason)
            await handle.cancel()
        return api.CancelJobResponse(job=job)

    async def ListJobs(
        self, request: api.ListJobsRequest, context: grpc.aio.ServicerContext[api.ListJobsRequest, api.ListJobsResponse]
    ) -> api.ListJobsResponse:
        tenant = await self.authenticate(context)
        status: Status | None = None
        if request.status != JobStatus.JOB_STATUS_UNSPECIFIED:
            status = job_view.status_of_proto(request.status)
            if status is None:
                await abort(context, invalid("status", "is not a job status"))
        try:
            page_size = validation.check_page_size(request.page_size)
            cursor = listing.Cursor.decode(request.page_token, status or "") if request.page_token else None
        except RequestError as error:
            await abort(context, error)
        except listing.BadPageToken as exc:
            await abort(context, invalid("page_token", str(exc)))
        query = f"{JOB_WORKFLOWS} AND {tenant_term(tenant)}"
        if status:
            query += f" AND {STATUS_QUERY[status]}"
        executions, next_token = await listing.newest_first(self.client, query, page_size, cursor, status or "")
        page = [await job_view.job_view(execution) for execution in executions]
        return api.ListJobsResponse(jobs=page, next_page_token=next_token)

    async def CreateUpload(
        self,
        request: api.CreateUploadRequest,
        context: grpc.aio.ServicerContext[api.CreateUploadRequest, api.CreateUploadResponse],
    ) -> api.CreateUploadResponse:
        tenant = await self.authenticate(context)
        try:
            ttl = upload_ttl(request.ttl if request.HasField("ttl") else None)
        except RequestError as error:
            await abort(context, error)
        await self.check_uploads(context, tenant)
        return await self.uploads.grant(tenant, ttl)

    async def WatchJob(
        self, request: api.WatchJobRequest, context: grpc.aio.ServicerContext[api.WatchJobRequest, api.WatchJobResponse]
    ) -> AsyncIterator[api.WatchJobResponse]:
        tenant = await self.authenticate(context)
        if request.after and not cursors.is_valid(request.after):
            await abort(context, invalid("after", "is not an event id from this job's stream"))
        await self.owned(context, tenant, request.job_id)  # the stream says everything else
        try:
            async for event in self.hub.watch(request.job_id, request.after, owner=tenant):
                yield api.WatchJobResponse(event=await with_fresh_result_url(event, self.store))
        except SlowConsumerError as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
