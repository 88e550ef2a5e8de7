"""Bad input, gRPC: property-based fuzzing of every SubmitJob field (as messages and as raw bytes: invalid
UTF-8, truncated and malformed protobuf, huge and negative numbers on the wire), oversized payloads, and the
job-id RPCs with malformed, foreign and other tenants' ids.

Only documented status codes may come back (never UNKNOWN or INTERNAL), every INVALID_ARGUMENT names its
field, no process crashes, and exactly the accepted submissions started jobs (counted in Temporal)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import grpc
import httpx
import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import strategies as st
from temporalio.client import Client

from devstack.reliability import Record
from devstack.stack import local_models
from jobstream import cursors
from jobstream.keys_store import remove_key
from jobstream.pipelines import load_pipelines
from jobstream.search_attributes import JOB_TENANT
from jobstream.settings import Settings, get_settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams, JobStatus
from services.job_service.validation import IDEMPOTENCY_KEY, JOB_ID, MAX_TOKENS_LIMIT
from tests.stack.faults.fuzzing import FuzzLog, examples, fuzz
from tests.stack.helpers import (
    Metadata,
    Stub,
    add_api_key,
    auth,
    current_pid,
    job_service,
    post_upload,
    process_alive,
    submit,
    tenant_key,
    wait_terminal,
)

SUBMIT = "/jobstream.v1.JobService/SubmitJob"
# Those the local stack can run; the others (the GPU model's) are refused like unknown ones.
SERVED = set(local_models(get_settings()))
PIPELINES = [name for name in load_pipelines().names() if load_pipelines().models(name) <= SERVED]
# The codes SubmitJob documents: accepted, a bad field, too large, no valid key, key reused differently.
SUBMIT_CODES = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "ALREADY_EXISTS"}
FIELDS = {"pipeline", "prompt", "input_ref", "params.max_tokens", "params.temperature", "idempotency_key"}
INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"ok\xfe"]


# -- the tenant under test, and what it may use --------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str
    removed_key: str  # a key this tenant used to have: rotated out, so refused
    upload_ref: str  # an input this tenant uploaded
    empty_ref: str  # a reference from CreateUpload with nothing uploaded to it
    foreign_ref: str  # another tenant's upload


@pytest.fixture
async def tenant(stub: Stub, stack: Settings, api_key: str) -> AsyncIterator[Tenant]:
    """A brand-new tenant, so that every job it owns was started by this test."""
    with tenant_key(stack, "fuzz") as (name, key):
        removed = add_api_key(stack, name)
        remove_key(stack, removed)
        refs = []
        for owner, content in ((key, b"An uploaded prompt"), (key, None), (api_key, b"Someone else's prompt")):
            upload = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(owner))
            if content is not None:
                async with httpx.AsyncClient(timeout=30) as http:
                    assert (await post_upload(http, upload, content)).is_success
            refs.append(upload.input_ref)
        yield Tenant(name, key, removed, *refs)


def metadata_for(tenant: Tenant, who: str) -> Metadata:
    return {
        "own": auth(tenant.key),
        "none": (),
        "garbage": (("authorization", "Bearer js_not_a_key"),),
        "scheme": (("authorization", f"Basic {tenant.key}"),),
        "lower": (("authorization", f"bearer {tenant.key}"),),  # the scheme is case-insensitive
        "removed": auth(tenant.removed_key),
    }[who]


# -- SubmitJob as messages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitCase:
    who: str
    pipeline: str
    input: tuple[str, str] | None  # ("prompt" | "input_ref", value)
    max_tokens: int
    temperature: float | None
    seed: int | None
    idempotency_key: str

    def request(self) -> api.SubmitJobRequest:
        params = GenerationParams(max_tokens=self.max_tokens)
        if self.temperature is not None:
            params.temperature = self.temperature
        if self.seed is not None:
            params.seed = self.seed
        request = api.SubmitJobRequest(pipeline=self.pipeline, params=params, idempotency_key=self.idempotency_key)
        if self.input is not None:
            setattr(request, self.input[0], self.input[1])
        return request


def submit_cases(tenant: Tenant) -> st.SearchStrategy[SubmitCase]:
    text = st.text(max_size=80)
    refs = st.sampled_from(
        [tenant.upload_ref, tenant.empty_ref, tenant.foreign_ref, "", "minio://jobstream/", "s3://x/y", "../../etc"]
    )
    return st.builds(
        SubmitCase,
        who=st.sampled_from(["own"] * 6 + ["none", "garbage", "scheme", "lower", "removed"]),
        pipeline=st.one_of(st.sampled_from(["", *load_pipelines().names(), "GENERATE", "generate\n", "nope"]), text),
        input=st.one_of(
            st.none(),
            st.tuples(st.just("prompt"), st.one_of(text, st.sampled_from(["", " ", "\t\n", "\u3000", "\u200b"]))),
            st.tuples(st.just("input_ref"), st.one_of(refs, text)),
        ),
        max_tokens=st.one_of(
            st.sampled_from([0, 1, 2, 8, MAX_TOKENS_LIMIT, MAX_TOKENS_LIMIT + 1, -1, 2**31 - 1, -(2**31)]),
            st.integers(-(2**31), 2**31 - 1),
        ),
        temperature=st.one_of(
            st.none(), st.sampled_from([0.0, -0.0, 2.0, math.nextafter(2.0, 3.0), -1e-300]), st.floats()
        ),
        seed=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
        idempotency_key=st.one_of(st.just(""), st.sampled_from(["k", "a b", "x" * 128, "x" * 129, "é"]), text),
    )


def expected(case: SubmitCase, tenant: Tenant) -> tuple[set[str], str]:
    """The documented answer: the allowed codes and, for INVALID_ARGUMENT, the field named first."""
    if case.who not in ("own", "lower"):
        return {"UNAUTHENTICATED"}, ""
    if (case.pipeline or "generate") not in PIPELINES:
        return {"INVALID_ARGUMENT"}, "pipeline"
    if case.input is None:
        return {"INVALID_ARGUMENT"}, "prompt"
    kind, value = case.input
    if kind == "prompt" and not value.strip():
        return {"INVALID_ARGUMENT"}, "prompt"
    if kind == "input_ref" and not value:
        return {"INVALID_ARGUMENT"}, "input_ref"
    if not 0 <= case.max_tokens <= MAX_TOKENS_LIMIT:
        return {"INVALID_ARGUMENT"}, "params.max_tokens"
    if case.temperature is not None and not 0.0 <= case.temperature <= 2.0:
        return {"INVALID_ARGUMENT"}, "params.temperature"
    if case.idempotency_key and not IDEMPOTENCY_KEY.fullmatch(case.idempotency_key):
        return {"INVALID_ARGUMENT"}, "idempotency_key"
    if kind == "input_ref" and value != tenant.upload_ref:
        return {"INVALID_ARGUMENT"}, "input_ref"  # foreign, malformed or never uploaded: looked up last
    # A key this run already used for another request is refused; otherwise the job is (or already was) there.
    return ({"OK", "ALREADY_EXISTS"} if case.idempotency_key else {"OK"}), ""


# -- SubmitJob as raw bytes ----------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= 2**64 - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, data: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(data)) + data


def raw_submits() -> st.SearchStrategy[bytes]:
    valid = st.builds(
        lambda prompt, tokens: api.SubmitJobRequest(
            prompt=prompt, params=GenerationParams(max_tokens=tokens)
        ).SerializeToString(),
        st.text(min_size=1, max_size=40),
        st.integers(1, 16),
    )
    bad_text = st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.binary(max_size=6),
        st.sampled_from(INVALID_UTF8),
        st.binary(max_size=6),
    )
    wire_params = st.builds(
        lambda tokens, temperature, seed: varint(1 << 3)
        + varint(tokens)
        + varint(2 << 3 | 1)
        + temperature
        + varint(3 << 3)
        + varint(seed),
        st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([2**64 - 1, 2**63, 2**32 + 5, 2**31, 4096])),
        st.one_of(
            st.binary(min_size=8, max_size=8),
            st.sampled_from([struct.pack("<d", v) for v in (math.nan, math.inf, -math.inf, 1.0, 5e-324)]),
        ),
        st.integers(0, 2**64 - 1),
    )
    return st.one_of(
        st.binary(max_size=300),  # noise
        st.builds(
            lambda base, field, text: base + length_delimited(field, text),
            valid,
            st.sampled_from([1, 2, 3, 5]),
            bad_text,
        ),
        st.builds(lambda base, cut: base[: max(0, len(base) - cut)], valid, st.integers(1, 40)),  # truncated
        st.builds(
            lambda base, at, bit: bytes(
                b ^ (1 << bit) if i == at % max(1, len(base)) else b for i, b in enumerate(base)
            ),
            valid,
            st.integers(0, 200),
            st.integers(0, 7),
        ),
        st.builds(
            lambda prompt, params: length_delimited(2, prompt) + length_delimited(4, params),
            st.just(b"Hello"),
            wire_params,
        ),
    )


# -- the tests -------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class JobIdCase:
    method: str
    who: str  # own | other | none
    target: str  # own | other | missing | malformed
    malformed: str
    after: str


@pytest.mark.timeout(1800)
async def test_fuzzed_job_ids_never_reach_another_tenants_job(
    stub: Stub, tenant: Tenant, api_key: str, stack: Settings, full_suite: bool, reliability: Record
) -> None:
    reliability.fault = "bad input: job ids on GetJob / CancelJob / WatchJob (malformed, foreign, other tenant's)"
    own = await submit(stub, tenant.key, "Mine", max_tokens=3)
    await wait_terminal(stub, tenant.key, own.job_id)
    # Another tenant's job, still running while the fuzzer tries to cancel it with the wrong key.
    other = await submit(stub, api_key, "Not yours", pipeline="drill-slow", max_tokens=200)
    log = FuzzLog()
    ids = {"own": own.job_id, "other": other.job_id, "missing": "job_" + "b" * 26}

    async def check(case: JobIdCase) -> None:
        job_id = case.malformed if case.target == "malformed" else ids[case.target]
        metadata = {"own": auth(tenant.key), "other": auth(api_key), "none": ()}[case.who]
        try:
            if case.method == "GetJob":
                await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=metadata, timeout=30)
            elif case.method == "CancelJob":
                if case.who == "other" and case.target == "other":
                    return  # the owner cancelling its own job is not bad input
                await stub.CancelJob(api.CancelJobRequest(job_id=job_id), metadata=metadata, timeout=30)
            else:
                if case.who == "other" and case.target == "other":
                    return  # the owner watching its own running job is not bad input either
                request = api.WatchJobRequest(job_id=job_id, after=case.after)
                async for _ in stub.WatchJob(request, metadata=metadata, timeout=30):
                    pass  # only the tenant's own, finished job answers: its story, then the end
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        log.answer(code)
        bad_after = case.method == "WatchJob" and bool(case.after) and not cursors.is_valid(case.after)
        if case.who == "none":
            allowed = "UNAUTHENTICATED"
        elif (case.target == "malformed" and not JOB_ID.fullmatch(case.malformed)) or bad_after:
            allowed = "INVALID_ARGUMENT"
        elif case.target == "malformed" or case.target == "missing" or case.target != case.who:
            allowed = "NOT_FOUND"  # a job that does not exist and another tenant's job look the same
        else:
            allowed = "OK"
        assert code == allowed, (case, code)

    strategy = st.builds(
        JobIdCase,
        method=st.sampled_from(["GetJob", "CancelJob", "WatchJob"]),
        who=st.sampled_from(["own", "own", "other", "none"]),
        target=st.sampled_from(["own", "other", "missing", "malformed"]),
        malformed=st.one_of(
            st.text(max_size=40),
            st.sampled_from(["", "job_", "job_" + "A" * 26, "job_" + "a" * 27, "job_" + "a" * 26 + "\n", "../job"]),
        ),
        after=st.one_of(st.just(""), st.text(max_size=16), st.sampled_from(["999.9.0000000", "000.0.0000000"])),
    )
    try:
        await fuzz(strategy, check, examples(full_suite, reduced=100, whole=1000), full_suite)
    finally:
        reliability.inputs += log.cases
        reliability.jobs += 2
        reliability.note(log.summary())
    # The other tenant's job was never touched: it runs on to success.
    finished = await wait_terminal(stub, api_key, other.job_id, timeout_s=240)
    assert finished.status == JobStatus.JOB_STATUS_SUCCEEDED, finished


@dataclass(frozen=True)
class OtherCase:
    method: str
    number: int
    nanos: int
    text: str


@pytest.mark.timeout(1800)
async def test_fuzzed_numbers_and_tokens_of_the_other_rpcs_get_documented_codes(
    stub: Stub, tenant: Tenant, full_suite: bool, reliability: Record
) -> None:
    reliability.fault = "bad input: ListJobs / CreateUpload / CancelJob numbers, tokens and reasons"
    log = FuzzLog()
    metadata = auth(tenant.key)

    async def check(case: OtherCase) -> None:
        try:
            if case.method == "CreateUpload":
                ttl = Duration(seconds=case.number, nanos=case.nanos)
                await stub.CreateUpload(api.CreateUploadRequest(ttl=ttl), metadata=metadata, timeout=30)
            elif case.method == "ListJobs":
                request = api.ListJobsRequest(page_size=case.number % 2**32 - 2**31, page_token=case.text)
                request.status = cast(JobStatus, case.nanos % 2**32 - 2**31)  # open enum: any int32 travels
                await stub.ListJobs(request, metadata=metadata, timeout=30)
            else:
                request_cancel = api.CancelJobRequest(job_id="job_" + "d" * 26, reason=case.text * (case.number % 40))
                await stub.CancelJob(request_cancel, metadata=metadata, timeout=30)
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        log.answer(code)
        assert code in {"OK", "INVALID_ARGUMENT", "NOT_FOUND"}, (case, code)

    numbers = st.one_of(
        st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 604_800, 604_801, 315_576_000_001, 2**62])
    )
    strategy = st.builds(
        OtherCase,
        method=st.sampled_from(["CreateUpload", "ListJobs", "CancelJob"]),
        number=numbers,
        nanos=st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 999_999_999, -1, 10**9])),
        text=st.one_of(st.text(max_size=60), st.sampled_from(["", "eyJ4IjoxfQ", "e30", "garbage=="])),
    )
    try:
        await fuzz(strategy, check, examples(full_suite, reduced=100, whole=1000), full_suite)
    finally:
        reliability.inputs += log.cases
        reliability.note(log.summary())
