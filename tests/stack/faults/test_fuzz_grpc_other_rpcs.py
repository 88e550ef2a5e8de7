"""Bad input, gRPC's other RPCs: ListJobs, CreateUpload and CancelJob fuzzed with numbers (sizes, durations,
enum values), page tokens and reasons: only documented codes come back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import strategies as st

from devstack.reliability import Record
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.faults.fuzz_tenant import Tenant
from tests.stack.faults.fuzzing import FuzzLog, examples, fuzz
from tests.stack.job_service_client import Stub, auth


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
