"""Fault 3: the SSE bridge is SIGKILLed mid-stream and restarted by the supervisor: clients reconnecting with
Last-Event-ID lose and repeat nothing."""

from __future__ import annotations

import asyncio
import os
import signal

from devstack.reliability import Record
from jobstream.kafka_reader import REPLAYS_PER_OWNER
from jobstream.settings import Settings
from tests.stack.faults.scenario import stream_through_fault
from tests.stack.job_service_client import Stub, submit, wait_terminal
from tests.stack.sse_client import read_stream, sse_client
from tests.stack.stack_processes import current_pid, kill_process, wait_restarted


async def test_sse_bridge_killed_mid_stream_resumes_each_client_exactly_after_its_last_event(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    reliability.fault = "3. SSE bridge SIGKILLed mid-stream"

    async def kill_bridge() -> None:
        old = kill_process(stack, "sse-bridge")
        reliability.inputs += 1
        await wait_restarted(stack, "sse-bridge", old)

    outcomes = await stream_through_fault(stub, api_key, stack, reliability, kill_bridge)
    connections = [outcome.followed.connections for outcome in outcomes]
    reliability.note(f"SSE connections per client {connections}")
    # The first client was mid-stream when the bridge died: it had to reconnect (with Last-Event-ID).
    assert connections[0] >= 2, connections


async def test_streams_waiting_for_a_replay_consumer_wait_instead_of_being_ended(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    """Issue 22, finding 11: every replay consumer held up (Kafka stopped under them) for longer than a stream
    used to be allowed to wait; the streams waiting behind them stay open and get their events afterwards."""
    reliability.fault = "3. replays held up 12 s (Kafka stopped) while resumed streams wait for a consumer"
    reply = await submit(stub, api_key, "Wait your turn", max_tokens=8)
    await wait_terminal(stub, api_key, reply.job_id)
    async with sse_client() as client:
        whole = await read_stream(client, reply.events_url)
        resume_after = whole[0].id or ""  # each resumed stream replays the rest: it needs a replay consumer
        streams = REPLAYS_PER_OWNER + 2  # more than the tenant may replay on at once: some wait their turn
        kafka = current_pid(stack, "kafka")
        os.kill(kafka, signal.SIGSTOP)
        try:
            reading = [
                asyncio.create_task(read_stream(client, reply.events_url, {"last-event-id": resume_after}))
                for _ in range(streams)
            ]
            await asyncio.sleep(12.0)  # past the 10 s after which a waiting stream used to be ended
        finally:
            os.kill(kafka, signal.SIGCONT)
        resumed = await asyncio.gather(*reading)
    reliability.inputs += streams
    reliability.jobs += 1
    for events in resumed:
        reliability.events += len(events)
        assert [event.id for event in events] == [event.id for event in whole[1:]]
