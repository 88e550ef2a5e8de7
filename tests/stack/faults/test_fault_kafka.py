"""Fault 5: the Kafka broker is SIGKILLed mid-stream and restarted by the supervisor: no token is lost or
duplicated at any client, and every job completes."""

from __future__ import annotations

from temporalio.client import Client

from devstack.reliability import Record
from jobstream.settings import Settings
from tests.stack.faults.scenario import model_attempts, stream_through_fault
from tests.stack.helpers import Stub, kill_process, wait_restarted


async def test_kafka_broker_killed_mid_stream_loses_and_repeats_no_token(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "5. Kafka broker SIGKILLed mid-stream"

    async def kill_kafka() -> None:
        old = kill_process(stack, "kafka")
        reliability.inputs += 1
        await wait_restarted(stack, "kafka", old)

    outcomes = await stream_through_fault(stub, api_key, stack, reliability, kill_kafka)
    reconnects = sum(o.followed.connections - 1 for o in outcomes)
    attempts = await model_attempts(temporal_client, outcomes)
    reliability.note(f"{reconnects} SSE reconnects, run_model attempts {attempts}")
