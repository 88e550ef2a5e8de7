"""The gRPC JobService: translates each request to a call of jobs.Jobs and its answer back to a response.
Refusals are raised, not aborted here: interceptors.py maps them to status codes in one place."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc
from temporalio.client import Client

from jobstream.auth import Caller
from jobstream.event_hub import EventHub
from jobstream.job_state import Status
from jobstream.payload_store import PayloadStore
from jobstream.pipelines import Pipelines
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from jobstream.v1.job_service_pb2_grpc import JobServiceServicer
from services.job_service import job_view, validation
from services.job_service.auth_interceptor import CALLER, UNAUTHENTICATED
from services.job_service.errors import InvalidField, NotAuthenticated
from services.job_service.jobs import Jobs
from services.job_service.uploads import upload_ttl


def caller() -> Caller:
    """Who calls, as AuthInterceptor established it before the request was parsed."""
    found = CALLER.get(None)
    if found is None:  # served without the interceptor: refuse rather than guess
        raise NotAuthenticated(UNAUTHENTICATED)
    return found


def status_filter(status: int) -> Status | None:
    """The status a ListJobs request filters on (None: every status)."""
    if status == JobStatus.JOB_STATUS_UNSPECIFIED:
        return None
    if (named := job_view.status_of_proto(status)) is None:
        raise InvalidField("status", "is not a job status")
    return named


class JobService(JobServiceServicer):
    def __init__(
        self, settings: Settings, client: Client, store: PayloadStore, pipelines: Pipelines, hub: EventHub
    ) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.jobs = Jobs(settings, client, store, pipelines, hub)

    async def SubmitJob(
        self,
        request: api.SubmitJobRequest,
        context: grpc.aio.ServicerContext[api.SubmitJobRequest, api.SubmitJobResponse],
    ) -> api.SubmitJobResponse:
        who = caller()
        valid = validation.check_submit(request, self.pipelines, self.settings)
        # The request's fingerprint tells a retry with the same idempotency key from a reuse of the key.
        fingerprint = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
        accepted = await self.jobs.submit(who, valid, fingerprint)
        link = self.jobs.events_link(who, accepted.job_id)
        return api.SubmitJobResponse(
            job_id=accepted.job_id, status=accepted.status, events_url=link.events_url, stream_token=link.token
        )

    async def GetJob(
        self, request: api.GetJobRequest, context: grpc.aio.ServicerContext[api.GetJobRequest, api.GetJobResponse]
    ) -> api.GetJobResponse:
        who = caller()
        job = await self.jobs.get(who, request.job_id)
        link = self.jobs.events_link(who, request.job_id)
        return api.GetJobResponse(job=job, events_url=link.events_url, stream_token=link.token)

    async def CancelJob(
        self,
        request: api.CancelJobRequest,
        context: grpc.aio.ServicerContext[api.CancelJobRequest, api.CancelJobResponse],
    ) -> api.CancelJobResponse:
        return api.CancelJobResponse(job=await self.jobs.cancel(caller(), request.job_id, request.reason))

    async def ListJobs(
        self, request: api.ListJobsRequest, context: grpc.aio.ServicerContext[api.ListJobsRequest, api.ListJobsResponse]
    ) -> api.ListJobsResponse:
        page = await self.jobs.list(caller(), status_filter(request.status), request.page_size, request.page_token)
        return api.ListJobsResponse(jobs=page.jobs, next_page_token=page.next_token)

    async def CreateUpload(
        self,
        request: api.CreateUploadRequest,
        context: grpc.aio.ServicerContext[api.CreateUploadRequest, api.CreateUploadResponse],
    ) -> api.CreateUploadResponse:
        who = caller()
        return await self.jobs.create_upload(who, upload_ttl(request.ttl if request.HasField("ttl") else None))

    async def WatchJob(
        self, request: api.WatchJobRequest, context: grpc.aio.ServicerContext[api.WatchJobRequest, api.WatchJobResponse]
    ) -> AsyncIterator[api.WatchJobResponse]:
        async for event in self.jobs.watch(caller(), request.job_id, request.after):
            yield api.WatchJobResponse(event=event)
