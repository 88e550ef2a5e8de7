"""Bad input, gRPC SubmitJob: property-based fuzzing of every field (as messages and as raw bytes: invalid
UTF-8, truncated and malformed protobuf, huge and negative numbers on the wire), and oversized payloads.

Only documented status codes may come back (never UNKNOWN or INTERNAL), every INVALID_ARGUMENT names its
field, no process crashes, and exactly the accepted submissions started jobs (counted in Temporal)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import strategies as st
from temporalio.client import Client

from devstack.reliability import Record
from jobstream.search_attributes import JOB_TENANT
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from tests.stack.faults.fuzz_tenant import Tenant
from tests.stack.faults.fuzzing import FuzzLog, examples, fuzz
from tests.stack.faults.protobuf_wire import INVALID_UTF8, length_delimited, raw_submits, varint
from tests.stack.faults.submit_cases import SUBMIT, SUBMIT_CODES, SubmitCase, expected, metadata_for, submit_cases
from tests.stack.job_service_client import Stub, auth, job_service
from tests.stack.stack_processes import current_pid, process_alive


async def tenant_jobs(client: Client, tenant: str, at_least: int) -> set[str]:
    """The ids of every job the tenant owns (visibility catches up within moments)."""
    query = f"{JOB_TENANT.name} = '{tenant}'"
    for _ in range(100):
        found = {execution.id async for execution in client.list_workflows(query)}
        if len(found) >= at_least:
            return found
        await asyncio.sleep(0.3)
    return found


async def cancel_quietly(stub: Stub, key: str, job_id: str) -> None:
    # Accepted fuzz jobs are cancelled at once: the point was the answer, not the generation.
    with contextlib.suppress(grpc.aio.AioRpcError):
        await stub.CancelJob(api.CancelJobRequest(job_id=job_id), metadata=auth(key), timeout=30)


def processes_alive(settings: Settings) -> Iterator[tuple[str, int]]:
    for name in ("job-service", "sse-bridge"):
        yield name, current_pid(settings, name)


@pytest.mark.timeout(1800)
async def test_fuzzed_submissions_get_documented_codes_and_start_only_accepted_jobs(
    stub: Stub, tenant: Tenant, stack: Settings, temporal_client: Client, full_suite: bool, reliability: Record
) -> None:
    reliability.fault = "bad input: SubmitJob fields, messages and raw bytes (hypothesis)"
    pids = dict(processes_alive(stack))
    log = FuzzLog()
    undocumented: list[tuple[Any, str, str]] = []

    async with job_service(stack) as typed, grpc.aio.insecure_channel(stack.grpc_target) as channel:
        raw = channel.unary_unary(SUBMIT, None, None)

        async def structured(case: SubmitCase) -> None:
            codes, field = expected(case, tenant)
            try:
                reply = await typed.SubmitJob(case.request(), metadata=metadata_for(tenant, case.who), timeout=60)
                code, details = "OK", ""
                log.accepted.add(reply.job_id)
                await cancel_quietly(typed, tenant.key, reply.job_id)
            except grpc.aio.AioRpcError as error:
                code, details = error.code().name, str(error.details())
            log.answer(code)
            if code not in codes or (field and not details.startswith(f"{field}:")):
                undocumented.append((case, code, details))
            assert code in codes, (case, code, details, codes)
            assert not field or details.startswith(f"{field}:"), (case, details, field)

        async def wire(data: bytes) -> None:
            try:
                reply = api.SubmitJobResponse.FromString(await raw(data, metadata=auth(tenant.key), timeout=60))
                code, details = "OK", ""
                log.accepted.add(reply.job_id)
                await cancel_quietly(typed, tenant.key, reply.job_id)
            except grpc.aio.AioRpcError as error:
                code, details = error.code().name, str(error.details())
            log.answer(code)
            if code not in SUBMIT_CODES:
                undocumented.append((data, code, details))
            assert code in SUBMIT_CODES, (data, code, details)

        async def either(case: SubmitCase | bytes) -> None:
            await (wire(case) if isinstance(case, bytes) else structured(case))

        strategy: st.SearchStrategy[SubmitCase | bytes] = st.one_of(submit_cases(tenant), raw_submits())
        try:
            await fuzz(strategy, either, examples(full_suite, reduced=200), full_suite)
        finally:
            reliability.inputs += log.cases
            reliability.note(log.summary())

    started = await tenant_jobs(temporal_client, tenant.name, len(log.accepted))
    reliability.jobs += len(started)
    assert not undocumented, undocumented[:5]
    # Exactly the accepted submissions became jobs: nothing rejected started one.
    assert started == log.accepted, (started - log.accepted, log.accepted - started)
    assert all(process_alive(pid) and current_pid(stack, name) == pid for name, pid in pids.items())


async def test_oversized_and_edge_payloads_get_documented_codes(
    stub: Stub, tenant: Tenant, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "bad input: oversized, truncated and invalid-UTF-8 SubmitJob payloads"
    limit = stack.max_input_bytes
    cases: list[tuple[str, bytes, set[str]]] = [
        (
            "prompt 1 byte over the input limit",
            api.SubmitJobRequest(prompt="x" * (limit + 1)).SerializeToString(),
            {"RESOURCE_EXHAUSTED"},
        ),
        (
            "message over gRPC's receive limit",
            api.SubmitJobRequest(prompt="x" * (limit + 128 * 1024)).SerializeToString(),
            {"RESOURCE_EXHAUSTED"},
        ),
        ("length prefix beyond the message", length_delimited(2, b"Hello")[:-2], {"INVALID_ARGUMENT"}),
        ("length prefix of 2^63", varint(2 << 3 | 2) + varint(2**63) + b"x", {"INVALID_ARGUMENT"}),
        ("group wire type", varint(2 << 3 | 3) + b"\x00", {"INVALID_ARGUMENT"}),
        ("unknown field only", varint(99 << 3) + varint(1), {"INVALID_ARGUMENT"}),
        ("empty message", b"", {"INVALID_ARGUMENT"}),
    ]
    cases += [
        (
            f"invalid UTF-8 {bad!r} in field {n}",
            length_delimited(2, b"Hi") + length_delimited(n, bad),
            {"INVALID_ARGUMENT"},
        )
        for n in (1, 2, 3, 5)
        for bad in INVALID_UTF8
    ]
    answers = []
    options = [("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(stack.grpc_target, options=options) as channel:
        raw_call = channel.unary_unary(SUBMIT, None, None)
        for name, data, _ in cases:
            try:
                await raw_call(data, metadata=auth(tenant.key), timeout=120)
                code = "OK"
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            answers.append((name, code))
            reliability.inputs += 1
    started = await tenant_jobs(temporal_client, tenant.name, 0)
    reliability.note(f"{len(cases)} hand-made payloads, {len(started)} jobs started")
    wrong = [(name, code) for (name, code), (_, _, codes) in zip(answers, cases, strict=True) if code not in codes]
    assert not wrong, wrong
    assert not started
