"""JobService acceptance, 8: idempotency. One key and one request are one job, however often or concurrently
it is sent and even after the job ended; the same key with another request is refused; tenants' keys are
their own."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from jobstream.v1.job_pb2 import JobStatus
from tests.stack.job_service_client import Stub, get_job, rpc_error, submit, wait_terminal

# -- 8. idempotency ----------------------------------------------------------------------------------------


async def test_same_key_same_request_is_the_same_job_even_after_it_finished(stub: Stub, api_key: str) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    first = await submit(stub, api_key, "Mr. Darcy", max_tokens=8, idempotency_key=key)
    again = await submit(stub, api_key, "Mr. Darcy", max_tokens=8, idempotency_key=key)
    assert again.job_id == first.job_id
    job = await wait_terminal(stub, api_key, first.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED
    after = await submit(stub, api_key, "Mr. Darcy", max_tokens=8, idempotency_key=key)
    assert after.job_id == first.job_id
    assert after.status == JobStatus.JOB_STATUS_SUCCEEDED
    assert after.stream_token
    assert first.job_id in after.events_url


async def test_racing_identical_submissions_start_one_job(stub: Stub, api_key: str) -> None:
    key = f"race-{uuid.uuid4().hex}"
    responses = await asyncio.gather(
        *(submit(stub, api_key, "Elizabeth", max_tokens=8, idempotency_key=key) for _ in range(5))
    )
    assert len({response.job_id for response in responses}) == 1


async def test_same_key_different_request_is_refused(stub: Stub, api_key: str) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    first = await submit(stub, api_key, "Mr. Bingley", max_tokens=8, idempotency_key=key)
    for changed in (
        submit(stub, api_key, "Mr. Collins", max_tokens=8, idempotency_key=key),
        submit(stub, api_key, "Mr. Bingley", max_tokens=9, idempotency_key=key),
        submit(stub, api_key, "Mr. Bingley", max_tokens=8, pipeline="generate-keywords", idempotency_key=key),
    ):
        error = await rpc_error(changed)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS, error
        assert "idempotency_key" in (error.details() or "")
    # ... and the original job is untouched.
    assert (await wait_terminal(stub, api_key, first.job_id)).status == JobStatus.JOB_STATUS_SUCCEEDED


async def test_two_tenants_using_one_key_get_two_jobs(stub: Stub, api_key: str, tenant_b: tuple[str, str]) -> None:
    key = f"shared-{uuid.uuid4().hex}"
    _, b_key = tenant_b
    mine = await submit(stub, api_key, "Jane", max_tokens=8, idempotency_key=key)
    theirs = await submit(stub, b_key, "Jane", max_tokens=8, idempotency_key=key)
    assert mine.job_id != theirs.job_id
    assert (await get_job(stub, b_key, theirs.job_id)).job_id == theirs.job_id
    error = await rpc_error(get_job(stub, api_key, theirs.job_id))
    assert error.code() == grpc.StatusCode.NOT_FOUND
