"""No one client takes the JobService's front door from everyone (issue 22), against the real stack: calls
that never send their message hold no slot, and one tenant's calls (watchers too) are bounded. Each attack
runs while another tenant is served, and how long that other tenant waited is printed (pytest -s) for the
record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from tests.stack.job_service_client import Stub, auth, submit
from tests.stack.tenants import tenant_with_limits
from tests.stack.timing import timed

SUBMIT = "/jobstream.v1.JobService/SubmitJob"


async def _never() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()
    yield b""  # pragma: no cover


async def held_call(channel: grpc.aio.Channel, key: str | None) -> grpc.StatusCode:
    """A SubmitJob whose headers are sent and whose request message never is."""
    metadata = auth(key) if key else ()
    try:
        await channel.stream_unary(SUBMIT, request_serializer=None, response_deserializer=None)(
            _never(), metadata=metadata
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def other_tenant_is_served(stack: Settings, stub: Stub, key: str, job_id: str) -> float:
    """How long an authenticated GetJob and a health check took together (both must succeed)."""
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def both() -> None:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(key), timeout=10)

        _, took = await timed(both)
        return took


async def hold_calls(stack: Settings, key: str | None, count: int, per_channel: int = 100) -> list[asyncio.Task[Any]]:
    """`count` held calls over connections of their own (each connection carries at most its stream limit)."""
    channels = [
        grpc.aio.insecure_channel(stack.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(-(-count // per_channel))
    ]
    tasks = [asyncio.create_task(held_call(channels[n // per_channel], key)) for n in range(count)]

    async def closed_after(task: asyncio.Task[Any]) -> None:
        await asyncio.wait([task])

    async def close_all() -> None:
        await asyncio.gather(*(closed_after(task) for task in tasks))
        await asyncio.gather(*(channel.close(None) for channel in channels))

    return [*tasks, asyncio.create_task(close_all())]


async def test_calls_that_never_send_their_message_take_no_slot_from_anyone(
    stack: Settings, stub: Stub, api_key: str
) -> None:
    job_id = (await submit(stub, api_key, max_tokens=2)).job_id
    held = await hold_calls(stack, None, 1200)
    await asyncio.sleep(1.0)
    took = await other_tenant_is_served(stack, stub, api_key, job_id)
    print(f"\nwith 1,200 anonymous calls held: GetJob + health took {took * 1000:.0f} ms")
    # Without a key, refused on the headers alone: none of them is still open. (The refusal ends a call whose
    # client has not finished sending; under load the client may see the stream's reset before the status.)
    codes = await asyncio.wait_for(asyncio.gather(*held[:-1]), 10)
    assert grpc.StatusCode.UNAUTHENTICATED in codes
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.CANCELLED}
    await held[-1]
    assert took < 2.0


async def test_one_tenants_calls_are_bounded_and_a_silent_call_ends(stack: Settings, stub: Stub, api_key: str) -> None:
    job_id = (await submit(stub, api_key, max_tokens=2)).job_id
    with tenant_with_limits(stack, "calls", max_calls=20) as (_, key):
        held = await hold_calls(stack, key, 300)
        await asyncio.sleep(1.0)
        took = await other_tenant_is_served(stack, stub, api_key, job_id)
        print(f"\nwith one tenant's 300 silent calls: another tenant's GetJob + health took {took * 1000:.0f} ms")
        assert took < 2.0
        # Past its 20, refused at once; its 20 end when their message has not come within the request timeout.
        # (As above, a refused call's client may see the reset before the status: CANCELLED.)
        done, _ = await asyncio.wait(held[:-1], timeout=2.0)
        assert len(done) == 280
        refused = [task.result() for task in done]
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in refused
        assert set(refused) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}
        codes = await asyncio.wait_for(asyncio.gather(*held[:-1]), stack.grpc_request_timeout_s + 5)
        ended = [code for task, code in zip(held[:-1], codes, strict=True) if task not in done]
        assert len(ended) == 20
        assert grpc.StatusCode.DEADLINE_EXCEEDED in ended
        assert set(ended) <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
        await held[-1]
        # The slots came back: the tenant is served again.
        reply = await stub.ListJobs(api.ListJobsRequest(page_size=1), metadata=auth(key))
        assert list(reply.jobs) == []


async def test_a_tenants_watchers_are_bounded_too(stack: Settings, stub: Stub, api_key: str) -> None:
    job_id = (await submit(stub, api_key, pipeline="drill-slow", max_tokens=60)).job_id
    with tenant_with_limits(stack, "watch", max_calls=3) as (_, key):
        own = (await submit(stub, key, pipeline="drill-slow", max_tokens=60)).job_id
        watches = [stub.WatchJob(api.WatchJobRequest(job_id=own), metadata=auth(key)) for _ in range(3)]
        for watch in watches:
            await anext(aiter(watch))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetJob(api.GetJobRequest(job_id=own), metadata=auth(key))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_calls 3" in str(refused.value.details())
        assert (await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(api_key))).job.job_id == job_id
        for watch in watches:
            watch.cancel()
        await stub.CancelJob(api.CancelJobRequest(job_id=own), metadata=auth(key))
    await stub.CancelJob(api.CancelJobRequest(job_id=job_id), metadata=auth(api_key))
