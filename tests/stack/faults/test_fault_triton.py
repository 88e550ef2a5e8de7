"""Fault 7: Triton (server and model stubs) is SIGKILLed mid-stream and restarted by the supervisor: the
inference activity retries, resumes after the tokens already published, and every job completes with an
exactly-once stream."""

from __future__ import annotations

from temporalio.client import Client

from devstack.reliability import Record
from devstack.supervisor import group_members
from devstack.triton import orphaned_shm
from jobstream.settings import Settings
from tests.stack.faults.scenario import model_attempts, stream_through_fault
from tests.stack.job_service_client import Stub
from tests.stack.stack_processes import current_pid, kill_process, process_alive, wait_restarted


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


async def test_a_triton_server_killed_alone_leaves_no_model_process_or_region_behind(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "7. tritonserver alone SIGKILLed mid-stream (its model stubs survive it)"
    regions_before = set(orphaned_shm())
    stubs: list[int] = []

    async def kill_the_server_only() -> None:
        old = current_pid(stack, "triton")
        stubs.extend(pid for pid in group_members(old) if pid != old)
        assert stubs, "no model stub in Triton's process group"
        kill_process(stack, "triton")  # the server alone: its stubs are reparented, not killed
        reliability.inputs += 1
        await wait_restarted(stack, "triton", old)

    outcomes = await stream_through_fault(stub, api_key, stack, reliability, kill_the_server_only, jobs=1)
    attempts = await model_attempts(temporal_client, outcomes)
    reliability.note(f"run_model attempts {attempts}; {len(stubs)} stubs of the dead server")
    assert attempts[0] >= 2, attempts
    # Nothing of the dead server lives on: not its stubs, not their shared memory.
    assert [pid for pid in stubs if process_alive(pid)] == []
    assert set(orphaned_shm()) - regions_before == set()
