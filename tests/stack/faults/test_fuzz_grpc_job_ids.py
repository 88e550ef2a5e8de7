"""Bad input, gRPC job ids: GetJob, CancelJob and WatchJob fuzzed with malformed, missing, foreign and other
tenants' ids (and WatchJob's cursor): each gets its one documented code, and another tenant's job is never
reached."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from hypothesis import strategies as st

from devstack.reliability import Record
from jobstream import cursors
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from services.job_service.validation import JOB_ID
from tests.stack.faults.fuzz_tenant import Tenant
from tests.stack.faults.fuzzing import FuzzLog, examples, fuzz
from tests.stack.job_service_client import Metadata, Stub, auth, submit, wait_terminal


@dataclass(frozen=True)
class JobIdCase:
    method: str
    who: str  # own | other | none
    target: str  # own | other | missing | malformed
    malformed: str
    after: str


def owners_own_call(case: JobIdCase) -> bool:
    """The owner cancelling or watching its own running job: not bad input, so not tried. (The owner reading
    it is, and must succeed.)"""
    return case.method != "GetJob" and case.who == "other" and case.target == "other"


async def code_of_call(stub: Stub, case: JobIdCase, job_id: str, metadata: Metadata) -> str:
    """The code the case's call ends with: "OK", or the status code of the error it raised."""
    try:
        if case.method == "GetJob":
            await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=metadata, timeout=30)
        elif case.method == "CancelJob":
            await stub.CancelJob(api.CancelJobRequest(job_id=job_id), metadata=metadata, timeout=30)
        else:
            request = api.WatchJobRequest(job_id=job_id, after=case.after)
            async for _ in stub.WatchJob(request, metadata=metadata, timeout=30):
                pass  # only the tenant's own, finished job answers: its story, then the end
        code = "OK"
    except grpc.aio.AioRpcError as error:
        code = error.code().name
    return code


def documented_code(case: JobIdCase) -> str:
    """The one code the service documents for the case."""
    bad_after = case.method == "WatchJob" and bool(case.after) and not cursors.is_valid(case.after)
    if case.who == "none":
        return "UNAUTHENTICATED"
    if (case.target == "malformed" and not JOB_ID.fullmatch(case.malformed)) or bad_after:
        return "INVALID_ARGUMENT"
    if case.target == "malformed" or case.target == "missing" or case.target != case.who:
        return "NOT_FOUND"  # a job that does not exist and another tenant's job look the same
    return "OK"


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
        if owners_own_call(case):
            return
        job_id = case.malformed if case.target == "malformed" else ids[case.target]
        metadata = {"own": auth(tenant.key), "other": auth(api_key), "none": ()}[case.who]
        code = await code_of_call(stub, case, job_id, metadata)
        log.answer(code)
        allowed = documented_code(case)
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
