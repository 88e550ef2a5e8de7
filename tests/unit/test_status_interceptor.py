"""services/job_service/interceptors.py on an in-process gRPC server (no stack): undecodable requests are
INVALID_ARGUMENT, the operations' refusals their status codes, dependency outages UNAVAILABLE, everything
else untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiokafka.errors import KafkaConnectionError
from temporalio.service import RPCError, RPCStatusCode

from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_service_pb2_grpc import JobServiceServicer, JobServiceStub, add_JobServiceServicer_to_server
from services.job_service import errors
from services.job_service.interceptors import StatusInterceptor, status_of

Context = grpc.aio.ServicerContext[Any, Any]


class Scripted(JobServiceServicer):
    async def SubmitJob(self, request: api.SubmitJobRequest, context: Context) -> api.SubmitJobResponse:
        if request.pipeline == "abort":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "pipeline: no")
        if request.pipeline == "refused":
            raise errors.InvalidField("pipeline", "not this one")
        if request.pipeline == "over":
            raise errors.OverLimit("tenant t has 3 jobs running")
        if request.pipeline == "bug":
            raise RuntimeError("a bug stays a bug")
        return api.SubmitJobResponse(job_id="job_" + request.prompt)

    async def GetJob(self, request: api.GetJobRequest, context: Context) -> api.GetJobResponse:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    async def WatchJob(self, request: api.WatchJobRequest, context: Context) -> AsyncIterator[api.WatchJobResponse]:
        yield api.WatchJobResponse()
        if request.job_id == "gone":
            raise errors.JobNotFound("gone")
        raise KafkaConnectionError("broker away")


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[StatusInterceptor()])
    add_JobServiceServicer_to_server(Scripted(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as open_channel:
            yield open_channel
    finally:
        await server.stop(None)


async def code_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    "raw",
    [b"\x12\x03\xff\xfeA", b"\x12\x05ab", b"\x22\x02\x08", b"\x0a\x02\xc3\x28", b"\x2a\x02\xed\xa0", b"\xff"],
    ids=["bad-utf8-prompt", "truncated", "truncated-params", "bad-utf8-pipeline", "surrogate-key", "bad-tag"],
)
async def test_undecodable_requests_are_invalid_argument(channel: grpc.aio.Channel, raw: bytes) -> None:
    submit = channel.unary_unary("/jobstream.v1.JobService/SubmitJob", None, None)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await submit(raw)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "jobstream.v1.SubmitJobRequest" in str(refused.value.details())


async def test_decodable_requests_and_the_handlers_own_errors_pass_through(channel: grpc.aio.Channel) -> None:
    stub = JobServiceStub(channel)
    reply = await stub.SubmitJob(api.SubmitJobRequest(prompt="x"))
    assert reply.job_id == "job_x"
    assert await code_of(stub.SubmitJob(api.SubmitJobRequest(pipeline="abort"))) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.SubmitJob(api.SubmitJobRequest(pipeline="bug"))) == grpc.StatusCode.UNKNOWN


async def test_outages_are_unavailable(channel: grpc.aio.Channel) -> None:
    stub = JobServiceStub(channel)
    assert await code_of(stub.GetJob(api.GetJobRequest(job_id="j"))) == grpc.StatusCode.UNAVAILABLE
    received: list[api.WatchJobResponse] = []

    async def watch() -> None:
        async for response in stub.WatchJob(api.WatchJobRequest(job_id="j")):
            received.append(response)

    with pytest.raises(grpc.aio.AioRpcError) as broken:
        await watch()
    assert len(received) == 1
    assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Kafka" in str(broken.value.details())


def every_refusal() -> list[type[errors.Refused]]:
    found: list[type[errors.Refused]] = []
    pending: list[type[errors.Refused]] = [errors.Refused]
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending.extend(kind.__subclasses__())
    return found


@pytest.mark.parametrize("kind", [kind for kind in every_refusal() if kind not in (errors.Refused, errors.FieldError)])
def test_every_refusal_has_its_own_status(kind: type[errors.Refused]) -> None:
    refusal = kind.__new__(kind)
    assert status_of(refusal) not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)


async def test_refusals_are_answered_with_their_status_and_message(channel: grpc.aio.Channel) -> None:
    stub = JobServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SubmitJob(api.SubmitJobRequest(pipeline="refused"))
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "pipeline: not this one",
    )
    assert await code_of(stub.SubmitJob(api.SubmitJobRequest(pipeline="over"))) == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        async for _ in stub.WatchJob(api.WatchJobRequest(job_id="gone")):
            pass
    assert (gone.value.code(), gone.value.details()) == (grpc.StatusCode.NOT_FOUND, "job gone not found")
