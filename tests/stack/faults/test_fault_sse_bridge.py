"""Fault 3: the SSE bridge is SIGKILLed mid-stream and restarted by the supervisor: clients reconnecting with
Last-Event-ID lose and repeat nothing."""

from __future__ import annotations

from devstack.reliability import Record
from jobstream.settings import Settings
from tests.stack.faults.scenario import stream_through_fault
from tests.stack.helpers import Stub, kill_process, wait_restarted


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
