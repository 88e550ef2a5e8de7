"""Fault 5: the Kafka broker is SIGKILLed mid-stream and restarted by the supervisor: no token is lost or
duplicated at any client, and every job completes.

Two shapes: a plain kill (the broker is usually back before the producers' 10 s request timeout), and a
broker that hangs (SIGSTOP) for longer than that timeout before it is killed, so the GPU worker's pending
sends may time out, failing the attempt, whose retry resumes after what reached the log."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from temporalio.client import Client

from devstack.reliability import Record
from jobstream.settings import Settings
from tests.stack.faults.scenario import model_attempts, stream_through_fault
from tests.stack.job_service_client import Stub
from tests.stack.stack_processes import current_pid, kill_process, wait_restarted

HANG_S = 12.0  # longer than the producers' request timeout (10 s)


@pytest.mark.parametrize("shape", ["kill", "hang-then-kill"])
async def test_kafka_broker_killed_mid_stream_loses_and_repeats_no_token(
    shape: str, stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = {
        "kill": "5. Kafka broker SIGKILLed mid-stream",
        "hang-then-kill": f"5. Kafka broker hung {HANG_S:.0f} s (SIGSTOP), then SIGKILLed, mid-stream",
    }[shape]

    async def fault() -> None:
        if shape == "hang-then-kill":
            pid = current_pid(stack, "kafka")
            os.kill(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(HANG_S)
            finally:
                os.kill(pid, signal.SIGKILL)  # a stopped process dies of SIGKILL without running again
                os.kill(pid, signal.SIGCONT)
            old = pid
        else:
            old = kill_process(stack, "kafka")
        reliability.inputs += 1
        await wait_restarted(stack, "kafka", old)

    outcomes = await stream_through_fault(stub, api_key, stack, reliability, fault)
    reconnects = sum(o.followed.connections - 1 for o in outcomes)
    attempts = await model_attempts(temporal_client, outcomes)
    # Whether a job needed another attempt depends on timing: a batch the producer still holds is re-sent to
    # the restarted broker, one that expired fails its attempt, which is retried. Either way nothing is lost.
    reliability.note(f"{reconnects} SSE reconnects, run_model attempts {attempts}")
