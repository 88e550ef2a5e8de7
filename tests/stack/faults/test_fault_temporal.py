"""Fault 6: the Temporal server is SIGKILLed mid-job and restarted on its kept SQLite state: every job
completes with an exactly-once stream, and while it is away the API answers UNAVAILABLE (retry), never
UNKNOWN or INTERNAL."""

from __future__ import annotations

import asyncio

import grpc

from devstack.reliability import Record
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from tests.stack.faults.scenario import STAGES, stream_through_fault
from tests.stack.job_service_client import Stub, auth, submit
from tests.stack.sse_client import follow_reconnecting, sse_client
from tests.stack.sse_story import check_story
from tests.stack.stack_processes import kill_process, process_ready, wait_restarted


async def test_temporal_killed_mid_job_keeps_its_state_and_every_job_completes(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    reliability.fault = "6. Temporal server SIGKILLed mid-job (SQLite kept)"
    codes: list[grpc.StatusCode] = []

    async def kill_temporal() -> None:
        old = kill_process(stack, "temporal")
        reliability.inputs += 1
        # While Temporal is away a client asking about a job must be told to retry.
        restart = asyncio.create_task(wait_restarted(stack, "temporal", old))
        while not restart.done():
            for call in (
                stub.GetJob(api.GetJobRequest(job_id="job_" + "a" * 26), metadata=auth(api_key), timeout=10),
                stub.ListJobs(api.ListJobsRequest(page_size=1), metadata=auth(api_key), timeout=10),
            ):
                try:
                    await call
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code())
            await asyncio.sleep(0.2)
        await restart

    await stream_through_fault(stub, api_key, stack, reliability, kill_temporal)
    assert await process_ready(stack, "temporal", 0)
    reliability.note(f"API calls during the outage: {sorted({code.name for code in codes})}")
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE}, codes


async def test_a_stream_opened_while_temporal_is_away_is_held_not_refused(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    reliability.fault = "6. SSE stream opened while Temporal is away (held open, never a 5xx)"
    reply = await submit(stub, api_key, "Opened in the dark", pipeline="drill-slow", max_tokens=30)
    old = kill_process(stack, "temporal")
    reliability.inputs += 1
    restart = asyncio.create_task(wait_restarted(stack, "temporal", old))
    try:
        # The bridge has never seen this job, so it must ask Temporal whose it is: it holds the stream.
        async with sse_client() as client:
            followed = await follow_reconnecting(client, reply.events_url)
    finally:
        await restart
    reliability.jobs += 1
    assert set(followed.statuses) == {200}, followed.statuses
    story = check_story(reply.job_id, followed.events, STAGES)
    assert story.tokens == 30
    reliability.note(f"connections {len(followed.statuses)}")
