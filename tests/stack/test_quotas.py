"""Quotas that hold under concurrency and cost nothing when they refuse (issue 22, findings 5 and 6), against
the real stack: a burst of submits cannot pass the running-jobs quota together, an idempotent retry or a
refused submit copies no input, a tenant holds a bounded number of uploads, and uploads expire in a day."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from temporalio.client import Client

from jobstream.payload_store import UPLOADS_RETENTION_DAYS, minio_client
from jobstream.pipelines import load_pipelines
from jobstream.search_attributes import tenant_term
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams
from jobstream.workflow_io import JOB_WORKFLOWS
from tests.stack.job_service_client import Stub, auth, job_service, post_upload, rpc_error, submit
from tests.stack.tenants import tenant_key, tenant_with_limits


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


async def code_of(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_a_burst_of_submits_cannot_pass_the_running_jobs_quota_together(
    stub: Stub, stack: Settings, temporal_client: Client
) -> None:
    with tenant_with_limits(stack, "burst", max_running_jobs=2) as (tenant, key):
        burst = [submit(stub, key, pipeline="drill-slow", max_tokens=60, seed=n) for n in range(30)]
        codes = await asyncio.gather(*(code_of(call) for call in burst))
        assert codes.count(grpc.StatusCode.OK) == 2, codes
        assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        query = f"{JOB_WORKFLOWS} AND {tenant_term(tenant)}"
        for _ in range(50):  # visibility follows the starts by a moment
            started = (await temporal_client.count_workflows(query)).count
            if started >= 2:
                break
            await asyncio.sleep(0.1)
        assert started == 2
        async for execution in temporal_client.list_workflows(query):
            await temporal_client.get_workflow_handle(execution.id).cancel()


def stored(stack: Settings, prefix: str) -> int:
    client = minio_client(stack, stack.minio_root_user, stack.minio_root_password)
    return sum(1 for _ in client.list_objects(stack.minio_bucket, prefix=prefix, recursive=True))


async def upload(stub: Stub, key: str, content: bytes) -> str:
    reply: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(key))
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await post_upload(http, reply, content)).status_code in (200, 201, 204)
    return reply.input_ref


async def test_a_retry_or_a_refused_submit_copies_no_input(stub: Stub, stack: Settings) -> None:
    with tenant_with_limits(stack, "copies", max_running_jobs=1) as (tenant, key):
        ref = await upload(stub, key, b"It is a truth universally acknowledged")
        request = api.SubmitJobRequest(pipeline="drill-slow", input_ref=ref, idempotency_key="once")
        first = await stub.SubmitJob(request, metadata=auth(key))
        copies = f"inputs/{tenant}/"
        assert stored(stack, copies) == 1
        for _ in range(3):  # the client's retries
            assert (await stub.SubmitJob(request, metadata=auth(key))).job_id == first.job_id
        refused = await rpc_error(stub.SubmitJob(api.SubmitJobRequest(input_ref=ref), metadata=auth(key)))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stored(stack, copies) == 1
        await stub.CancelJob(api.CancelJobRequest(job_id=first.job_id), metadata=auth(key))


async def test_a_tenant_holds_a_bounded_number_of_uploads_and_they_expire_in_a_day(stub: Stub, stack: Settings) -> None:
    with tenant_with_limits(stack, "uploads", max_uploads=2) as (_, key):
        for _ in range(2):
            await upload(stub, key, b"Mr. Darcy")
        refused = await rpc_error(stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(key)))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_uploads 2" in (refused.details() or "")
    client = minio_client(stack, stack.minio_root_user, stack.minio_root_password)
    lifecycle = client.get_bucket_lifecycle(stack.minio_bucket)
    assert lifecycle is not None
    rules = lifecycle.rules
    uploads = [rule for rule in rules if rule.rule_filter and rule.rule_filter.prefix == "uploads/"]
    assert [rule.expiration.days for rule in uploads if rule.expiration] == [UPLOADS_RETENTION_DAYS]


def prose(size: int) -> str:
    sentence = "It is a truth universally acknowledged, that a single man must be in want of a wife. "
    return (sentence * (size // len(sentence) + 1))[:size]


async def test_an_input_longer_than_its_model_takes_is_refused_naming_the_model(
    stub: Stub, stack: Settings, temporal_client: Client
) -> None:
    limit, model = load_pipelines().input_limit("generate-keywords") or (0, "")
    with tenant_key(stack, "long") as (tenant, key):
        too_long = prose(limit + 1)
        refused = await rpc_error(stub.SubmitJob(_keywords(prompt=too_long), metadata=auth(key)))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"prompt: is {limit + 1} bytes; the model {model}" in (refused.details() or ""), refused.details()
        ref = await upload(stub, key, too_long.encode())
        refused = await rpc_error(stub.SubmitJob(_keywords(input_ref=ref), metadata=auth(key)))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"input_ref: is {limit + 1} bytes; the model {model}" in (refused.details() or ""), refused.details()
        # The same input is fine for a pipeline whose models take it, and nothing was started or copied before.
        assert stored(stack, f"inputs/{tenant}/") == 0
        assert (await temporal_client.count_workflows(f"{JOB_WORKFLOWS} AND {tenant_term(tenant)}")).count == 0
        accepted = await stub.SubmitJob(api.SubmitJobRequest(input_ref=ref), metadata=auth(key))
        await stub.CancelJob(api.CancelJobRequest(job_id=accepted.job_id), metadata=auth(key))


def _keywords(prompt: str = "", input_ref: str = "") -> api.SubmitJobRequest:
    request = api.SubmitJobRequest(pipeline="generate-keywords", params=GenerationParams(max_tokens=4))
    if prompt:
        request.prompt = prompt
    if input_ref:
        request.input_ref = input_ref
    return request


async def test_a_tenants_running_jobs_hold_a_bounded_number_of_input_bytes(stub: Stub, stack: Settings) -> None:
    budget = 300_000
    with tenant_with_limits(stack, "bytes", max_input_bytes_in_flight=budget) as (_, key):
        slow = GenerationParams(max_tokens=400)  # 20 s at drill-slow's pace: running throughout the test

        async def submit_bytes(size: int) -> api.SubmitJobResponse:
            request = api.SubmitJobRequest(pipeline="drill-slow", prompt=prose(size), params=slow)
            reply: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=auth(key))
            return reply

        first = await submit_bytes(200_000)
        refused = await rpc_error(submit_bytes(200_000))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"max_input_bytes_in_flight {budget}" in (refused.details() or ""), refused.details()
        small = await submit_bytes(50_000)  # what is left of the budget is still there for smaller inputs
        # A burst cannot pass together either: the bytes are reserved before anything is awaited.
        burst = await asyncio.gather(*(code_of(submit_bytes(30_000)) for _ in range(10)))
        assert burst.count(grpc.StatusCode.OK) == 1, burst
        for reply in (first, small):
            await stub.CancelJob(api.CancelJobRequest(job_id=reply.job_id), metadata=auth(key))
