"""The gRPC JobService: accept a job at once, report it, list, cancel and watch it, per tenant."""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from jobstream import cursors
from jobstream.event_hub import EventHub, SlowConsumerError
from jobstream.job_events import set_result, usage_proto, with_fresh_result_url
from jobstream.job_state import STATUS_QUERY, JobMemo, Status, verdict_recorded
from jobstream.keys_store import KeysFileError
from jobstream.logs import bind_job
from jobstream.partitioning import partition_of
from jobstream.payload_store import UPLOADS, UPLOADS_RETENTION_DAYS, Changed, PayloadStore, StoredObject
from jobstream.pipelines import Pipelines
from jobstream.search_attributes import JOB_INPUT_BYTES, JOB_PIPELINE, JOB_STATUS, JOB_TENANT, tenant_term
from jobstream.settings import Settings
from jobstream.stream_tokens import StreamTokens
from jobstream.temporal_client import WORKFLOW_QUEUE
from jobstream.tenants import TenantLimits, limits_in
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import Job, JobStatus
from jobstream.v1.job_service_pb2_grpc import JobServiceServicer
from jobstream.workflow_io import (
    CANCEL_REASON_SIGNAL,
    JOB_WORKFLOWS,
    WORKFLOW_TYPE,
    GenerationParams,
    JobInput,
    JobResult,
    StageProgress,
)
from services.job_service import job_view, listing, validation
from services.job_service.auth_interceptor import CALLER, UNAUTHENTICATED
from services.job_service.quotas import OverQuota, RunningJobs
from services.job_service.validation import RequestError, invalid

MAX_SEED = 2**32 - 1

log = logging.getLogger(__name__)


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: RequestError) -> NoReturn:
    await context.abort(error.code, str(error))
    raise AssertionError("unreachable")  # abort raises


def input_size(valid: validation.ValidSubmit, upload: StoredObject | None) -> int:
    """Bytes of the job's input, as the quotas and the JobInputBytes search attribute count them."""
    return upload.size if upload else len((valid.prompt or "").encode("utf-8"))


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
        handle = self.client.get_workflow_handle(job_id)
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"job {job_id} not found")
            raise
        if job_view.owner_of(description) != tenant:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"job {job_id} not found")
        return handle, description

    async def view(self, job_id: str, description: WorkflowExecutionDescription) -> Job:
        """What GetJob and CancelJob answer: the job's state, its running stage's progress and, once it
        succeeded, its result (read from the workflow's result; a claim-checked one as a fresh URL)."""
        job = await job_view.job_view(description)
        job_view.add_live_details(job, description, await self.stage_progress(description))
        if description.status == WorkflowExecutionStatus.COMPLETED:
            result = await self.client.get_workflow_handle(job_id, result_type=JobResult).result()
            job.tokens_generated = result.tokens
            job.usage.CopyFrom(usage_proto(result.usage))
            job.finish_reason = result.finish_reason
            await set_result(job, result.text, result.ref, self.store)
        return job

    async def stage_progress(self, description: WorkflowExecutionDescription) -> StageProgress | None:
        """The running model stage's heartbeat details (CPU stages heartbeat without any)."""
        for pending in description.raw_description.pending_activities:
            if pending.heartbeat_details.payloads:
                details = await self.client.data_converter.decode(pending.heartbeat_details.payloads, [StageProgress])
                if details:
                    return StageProgress.model_validate(details[0])
        return None

    # -- RPCs -----------------------------------------------------------------------------------------
    async def SubmitJob(
        self, request: api.SubmitJobRequest, context: grpc.aio.ServicerContext[Any, Any]
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
            upload = await self.check_upload(tenant, valid) if valid.input_ref else None
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
                input_ref = await self.pin_upload(tenant, valid.input_ref, upload)
            except RequestError as error:
                await abort(context, error)
        prompt = valid.prompt
        if prompt is not None and len(prompt.encode("utf-8")) > self.settings.payload_threshold_bytes:
            # Claim check at the front door: a large prompt never enters Temporal.
            input_ref = await self.store.put(f"inputs/{tenant}", prompt.encode("utf-8"), "text/plain")
            prompt = None
        stages = self.pipelines.resolve(valid.pipeline)
        params = valid.params
        seed = params.seed if params.seed is not None else random.randint(0, MAX_SEED)
        job = JobInput(
            job_id=job_id,
            tenant=tenant,
            pipeline=valid.pipeline,
            stages=stages,
            prompt=prompt,
            input_ref=input_ref,
            params=GenerationParams(
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                seed=seed,
                top_p=params.top_p,
                stop=params.stop,
            ),
        )
        try:
            await self.client.start_workflow(
                WORKFLOW_TYPE,
                job,
                id=job_id,
                task_queue=WORKFLOW_QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # Its activities inherit it: every queue the job waits on serves the tenants in turn.
                priority=Priority(fairness_key=tenant, fairness_weight=limits.fairness_weight),
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(JOB_TENANT, tenant),
                        SearchAttributePair(JOB_STATUS, Status.QUEUED.value),
                        SearchAttributePair(JOB_PIPELINE, valid.pipeline),
                        SearchAttributePair(JOB_INPUT_BYTES, input_size(valid, upload)),
                    ]
                ),
                memo=JobMemo(
                    pipeline=valid.pipeline, status=Status.QUEUED, stage_count=len(stages), fingerprint=fingerprint
                ).changes(),
            )
        except WorkflowAlreadyStartedError:
            # Two identical submissions raced; the loser answers with the winner's job.
            description = await self.client.get_workflow_handle(job_id).describe()
            return await self.existing(context, description, fingerprint, job_id, tenant)
        return self.submitted(job_id, tenant, JobStatus.JOB_STATUS_QUEUED)

    async def existing(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        description: Any,
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
        if limit and (held := await self.store.count(f"{UPLOADS}/{tenant}/", limit)) >= limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"tenant {tenant} holds {held} uploads, its limit (max_uploads {limit}); submit them or wait "
                f"for them to expire ({UPLOADS_RETENTION_DAYS} day after upload)",
            )

    async def check_upload(self, tenant: str, valid: validation.ValidSubmit) -> StoredObject:
        """The tenant's upload that `input_ref` names, as it is now: uploaded, not empty, within the limits."""
        ref = valid.input_ref or ""
        try:
            key = self.store.key_of(ref)
        except ValueError as exc:
            raise invalid("input_ref", "is not a reference returned by CreateUpload") from exc
        if not key.startswith(f"{UPLOADS}/{tenant}/"):
            raise invalid("input_ref", "is not a reference returned by CreateUpload")
        stored = await self.store.stat(ref)
        if stored is None:
            raise invalid("input_ref", "nothing has been uploaded to this reference yet")
        if stored.size > self.settings.max_input_bytes:
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "input_ref",
                f"the upload is {stored.size} bytes; the maximum is {self.settings.max_input_bytes}",
            )
        if stored.size == 0:
            raise invalid("input_ref", "the uploaded object is empty")
        validation.check_model_input("input_ref", stored.size, valid.pipeline, self.pipelines)
        return stored

    async def pin_upload(self, tenant: str, ref: str, stored: StoredObject) -> str:
        """The job reads a copy of exactly what was checked: an upload to the same URL after this changes nothing."""
        try:
            return await self.store.pin(ref, stored.etag, f"inputs/{tenant}/uploads")
        except Changed as exc:
            raise RequestError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "input_ref",
                "the upload changed while it was checked; submit again",
            ) from exc

    async def tell_cancel_reason(self, handle: WorkflowHandle[Any, Any], reason: str) -> None:
        """The reason reaches the workflow as a signal just before the cancel, so job.cancelled carries it."""
        try:
            await handle.signal(CANCEL_REASON_SIGNAL, reason)
        except RPCError as exc:
            # The job closed between the check and the signal: there is nothing left to cancel.
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise

    async def GetJob(
        self, request: api.GetJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api.GetJobResponse:
        tenant = await self.authenticate(context)
        _, description = await self.owned(context, tenant, request.job_id)
        job = await self.view(request.job_id, description)
        events_url, token = self.stream_grant(request.job_id, tenant)
        return api.GetJobResponse(job=job, events_url=events_url, stream_token=token)

    async def CancelJob(
        self, request: api.CancelJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api.CancelJobResponse:
        tenant = await self.authenticate(context)
        if len(request.reason) > 1024:
            await abort(context, invalid("reason", "must be at most 1024 characters"))
        handle, description = await self.owned(context, tenant, request.job_id)
        job = await self.view(request.job_id, description)
        # Not once the workflow has recorded its verdict: it is only publishing the terminal event then.
        if not verdict_recorded(description.status, JobMemo.parse(await description.memo())):
            if request.reason:
                await self.tell_cancel_reason(handle, request.reason)
            await handle.cancel()
        return api.CancelJobResponse(job=job)

    async def ListJobs(
        self, request: api.ListJobsRequest, context: grpc.aio.ServicerContext[Any, Any]
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
        self, request: api.CreateUploadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api.CreateUploadResponse:
        tenant = await self.authenticate(context)
        # As documented: unset or zero means 15 minutes.
        out_of_range = invalid("ttl", "must be between 1 second and 7 days (0 means 15 minutes)")
        try:
            ttl = request.ttl.ToTimedelta() if request.HasField("ttl") else timedelta(0)
        except (OverflowError, ValueError):  # seconds beyond what a timedelta (or a Duration) can hold
            await abort(context, out_of_range)
        ttl = ttl or timedelta(minutes=15)
        if not timedelta(seconds=1) <= ttl <= timedelta(days=7):
            await abort(context, out_of_range)
        await self.check_uploads(context, tenant)
        key = f"{UPLOADS}/{tenant}/{uuid.uuid4().hex}"
        expire = Timestamp()
        expire.FromDatetime(datetime.now(UTC) + ttl)
        url, fields = await self.store.presigned_post(key, ttl, self.settings.max_input_bytes)
        return api.CreateUploadResponse(
            upload_url=url, upload_fields=fields, input_ref=self.store.ref(key), expire_time=expire
        )

    async def WatchJob(
        self, request: api.WatchJobRequest, context: grpc.aio.ServicerContext[Any, Any]
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
