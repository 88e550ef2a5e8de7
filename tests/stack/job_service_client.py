"""JobService clients for the stack tests: a stub on its own channel, a key's metadata, submitting a job,
reading it, waiting for its end, and the error a call fails with."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import httpx

from jobstream.connections import job_service_channel
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams, Job, JobStatus
from jobstream.v1.job_service_pb2_grpc import JobServiceStub
from tests.eventually import eventually

Metadata = tuple[tuple[str, str], ...]
# The generated stub is generic only for type checkers; at run time it is a plain class.
Stub: TypeAlias = "JobServiceStub[grpc.aio.Channel]"
TERMINAL = frozenset({JobStatus.JOB_STATUS_SUCCEEDED, JobStatus.JOB_STATUS_FAILED, JobStatus.JOB_STATUS_CANCELLED})
VALID_JOB_ID = "job_" + "a" * 26  # well-formed, but no such job


def auth(api_key: str) -> Metadata:
    return (("authorization", f"Bearer {api_key}"),)


@contextlib.asynccontextmanager
async def job_service(settings: Settings) -> AsyncIterator[Stub]:
    """A stub on its own channel; large enough messages for the claim-check tests' multi-MB prompts."""
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with job_service_channel(settings, options=options) as channel:
        yield JobServiceStub(channel)


def params(max_tokens: int = 16, seed: int | None = 7, temperature: float | None = 0.8) -> GenerationParams:
    return GenerationParams(max_tokens=max_tokens, seed=seed, temperature=temperature)


async def submit(
    stub: Stub,
    api_key: str,
    prompt: str = "It is a truth universally acknowledged",
    *,
    pipeline: str = "generate",
    max_tokens: int = 16,
    seed: int | None = 7,
    temperature: float | None = 0.8,
    idempotency_key: str = "",
) -> api.SubmitJobResponse:
    request = api.SubmitJobRequest(
        pipeline=pipeline,
        prompt=prompt,
        params=params(max_tokens, seed, temperature),
        idempotency_key=idempotency_key,
    )
    response: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=auth(api_key))
    return response


async def post_upload(http: httpx.AsyncClient, upload: api.CreateUploadResponse, content: bytes) -> httpx.Response:
    """Upload `content` as CreateUpload says: a form POST of its signed fields, then the file."""
    return await http.post(upload.upload_url, data=dict(upload.upload_fields), files={"file": ("input", content)})


async def get_job(stub: Stub, api_key: str, job_id: str) -> Job:
    response: api.GetJobResponse = await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(api_key))
    return response.job


async def wait_terminal(stub: Stub, api_key: str, job_id: str, timeout_s: float = 90.0) -> Job:
    """Poll GetJob until the job is SUCCEEDED, FAILED or CANCELLED."""
    return await eventually(
        lambda: get_job(stub, api_key, job_id),
        lambda job: job.status in TERMINAL,
        within_s=timeout_s,
        every_s=0.1,
        what=f"job {job_id} terminal",
    )


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    """The AioRpcError an awaitable RPC (or a streaming call's first message) fails with."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                break
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded; expected an error")
