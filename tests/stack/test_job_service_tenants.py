"""JobService acceptance, 9: tenants and authentication. A tenant reads, lists, watches and cancels only its
own jobs, and a call without a valid key is refused whatever it asks."""

from __future__ import annotations

from typing import Any

import grpc

from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import Job, JobStatus
from tests.stack.job_listing import all_job_ids, list_jobs, listed_once
from tests.stack.job_service_client import VALID_JOB_ID, Stub, auth, get_job, rpc_error, submit, wait_terminal
from tests.stack.tenants import tenant_key

# -- 9. tenants and authentication -------------------------------------------------------------------------


async def test_tenants_see_only_their_own_jobs_newest_first_filtered_and_paged(
    stub: Stub, tenant_a: tuple[str, str], tenant_b: tuple[str, str]
) -> None:
    _, a = tenant_a
    _, b = tenant_b
    done = [(await submit(stub, a, f"Chapter {n}", max_tokens=8)).job_id for n in range(3)]
    slow = (await submit(stub, a, "Longbourn", pipeline="drill-slow", max_tokens=200)).job_id
    theirs = (await submit(stub, b, "Netherfield", max_tokens=8)).job_id

    # Tenant B can neither read, watch nor cancel A's running job; A's job does not notice.
    for call in (
        stub.GetJob(api.GetJobRequest(job_id=slow), metadata=auth(b)),
        stub.CancelJob(api.CancelJobRequest(job_id=slow), metadata=auth(b)),
        stub.WatchJob(api.WatchJobRequest(job_id=slow), metadata=auth(b)),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        assert "not found" in (error.details() or "")
    assert (await get_job(stub, a, slow)).status in (JobStatus.JOB_STATUS_QUEUED, JobStatus.JOB_STATUS_RUNNING)
    await stub.CancelJob(api.CancelJobRequest(job_id=slow), metadata=auth(a))
    for job_id in [*done, slow]:
        await wait_terminal(stub, a, job_id)

    newest_first = [slow, *reversed(done)]
    pages = await listed_once(stub, a, [newest_first[:2], newest_first[2:]], 2)
    assert [job_id for page in pages for job_id in page] == newest_first
    assert pages[0] == newest_first[:2]
    assert all(len(page) <= 2 for page in pages)
    assert await listed_once(stub, b, [[theirs]], 10) == [[theirs]]

    succeeded = await listed_once(stub, a, [newest_first[1:]], 10, JobStatus.JOB_STATUS_SUCCEEDED)
    assert succeeded == [newest_first[1:]]
    cancelled = await listed_once(stub, a, [[slow]], 10, JobStatus.JOB_STATUS_CANCELLED)
    assert cancelled == [[slow]]
    failed = await all_job_ids(stub, a, page_size=10, status=JobStatus.JOB_STATUS_FAILED)
    assert failed == [[]]
    listed: list[Job] = list((await list_jobs(stub, a, page_size=10)).jobs)
    assert [job.status for job in listed] == [JobStatus.JOB_STATUS_CANCELLED] + [JobStatus.JOB_STATUS_SUCCEEDED] * 3
    assert all(job.pipeline and job.create_time.seconds for job in listed)


async def test_missing_or_wrong_api_key_is_unauthenticated(stub: Stub, stack: Settings) -> None:
    with tenant_key(stack, "revoked") as (_, revoked):
        assert (await list_jobs(stub, revoked)).jobs == []
    # The service re-reads the key file on every call: a removed key stops working at once.
    for metadata in (
        (),
        (("authorization", "Bearer js_nope"),),
        (("authorization", f"Basic {revoked}"),),
        auth(revoked),
    ):
        calls: list[Any] = [
            stub.SubmitJob(api.SubmitJobRequest(prompt="hi"), metadata=metadata),
            stub.GetJob(api.GetJobRequest(job_id=VALID_JOB_ID), metadata=metadata),
            stub.ListJobs(api.ListJobsRequest(), metadata=metadata),
            stub.CancelJob(api.CancelJobRequest(job_id=VALID_JOB_ID), metadata=metadata),
            stub.WatchJob(api.WatchJobRequest(job_id=VALID_JOB_ID), metadata=metadata),
            stub.CreateUpload(api.CreateUploadRequest(), metadata=metadata),
        ]
        for call in calls:
            error = await rpc_error(call)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (metadata, error)
