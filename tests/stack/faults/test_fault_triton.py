"""Fault 7: Triton (server and model stubs) is SIGKILLed mid-stream and restarted by the supervisor: the
inference activity retries, resumes after the tokens already published, and every job completes with an
exactly-once stream."""

from __future__ import annotations

from temporalio.client import Client

from devstack.reliability import Record
from jobstream.settings import Settings
from tests.stack.faults.scenario import model_attempts, stream_through_fault
from tests.stack.helpers import Stub, kill_process, wait_restarted


async def test_triton_killed_mid_stream_is_retried_to_an_exactly_once_stream(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "7. Triton SIGKILLed mid-stream"

    async def kill_triton() -> None:
        old = kill_process(stack, "triton", group=True)
        reliability.inputs += 1
        await wait_restarted(stack, "triton", old)

    outcomes = await stream_through_fault(stub, api_key, stack, reliability, kill_triton)
    attempts = await model_attempts(temporal_client, outcomes)
    reliability.note(f"run_model attempts {attempts}")
    # The first job was streaming when Triton died (the others most likely too): it needed another attempt.
    assert attempts[0] >= 2, attempts
