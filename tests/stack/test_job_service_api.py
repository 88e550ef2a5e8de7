"""JobService acceptance, part 2: idempotency, tenants and authentication, and bad input changing nothing."""

from __future__ import annotations

import asyncio
import base64
import math
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import grpc
import pytest
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionCount
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from jobstream.search_attributes import JOB_TENANT, tenant_term
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams, Job, JobStatus
from jobstream.workflow_io import JOB_WORKFLOWS, WORKFLOW_TYPE
from services.job_service import listing
from services.job_service.listing import Cursor
from tests.eventually import eventually
from tests.stack.helpers import (
    Stub,
    auth,
    get_job,
    job_service,
    rpc_error,
    submit,
    tenant_key,
    wait_terminal,
)

VALID_JOB_ID = "job_" + "a" * 26  # well-formed, but no such job


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


@pytest.fixture
def tenant_a(stack: Settings) -> Iterator[tuple[str, str]]:
    with tenant_key(stack, "tenant-a") as tenant:
        yield tenant


@pytest.fixture
def tenant_b(stack: Settings) -> Iterator[tuple[str, str]]:
    with tenant_key(stack, "tenant-b") as tenant:
        yield tenant


async def list_jobs(stub: Stub, key: str, **fields: Any) -> api.ListJobsResponse:
    response: api.ListJobsResponse = await stub.ListJobs(api.ListJobsRequest(**fields), metadata=auth(key))
    return response


async def all_job_ids(stub: Stub, key: str, page_size: int = 2, status: int = 0) -> list[list[str]]:
    """Every page of ListJobs (job ids), following next_page_token to the end."""
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await list_jobs(stub, key, page_size=page_size, page_token=token, status=status)
        pages.append([job.job_id for job in page.jobs])
        token = page.next_page_token
        if not token:
            return pages
        assert len(pages) < 50, "ListJobs paging never ends"


async def listed_once(
    stub: Stub, key: str, expected: list[list[str]], page_size: int, status: int = 0
) -> list[list[str]]:
    """ListJobs answers from Temporal's visibility store, which lags a little: its pages once they are `expected`."""
    return await eventually(
        lambda: all_job_ids(stub, key, page_size=page_size, status=status),
        lambda pages: pages == expected,
        within_s=20,
        every_s=0.2,
        what="ListJobs' pages",
    )


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


# -- 10. bad input: a clear error naming the field, and nothing started ------------------------------------


def _request(**fields: Any) -> api.SubmitJobRequest:
    fields.setdefault("params", GenerationParams(max_tokens=8))
    return api.SubmitJobRequest(**fields)


BAD_SUBMISSIONS: list[tuple[str, api.SubmitJobRequest, grpc.StatusCode, str]] = [
    ("empty prompt", _request(prompt=""), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ("whitespace prompt", _request(prompt=" \n\t  "), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ("no input", _request(), grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
    ("empty input_ref", _request(input_ref=""), grpc.StatusCode.INVALID_ARGUMENT, "input_ref"),
    ("foreign input_ref", _request(input_ref="s3://elsewhere/x"), grpc.StatusCode.INVALID_ARGUMENT, "input_ref"),
    ("unknown pipeline", _request(prompt="hi", pipeline="nope"), grpc.StatusCode.INVALID_ARGUMENT, "pipeline"),
    (
        "negative max_tokens",
        _request(prompt="hi", params=GenerationParams(max_tokens=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "params.max_tokens",
    ),
    (
        "huge max_tokens",
        _request(prompt="hi", params=GenerationParams(max_tokens=5000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "params.max_tokens",
    ),
    *(
        (
            f"temperature {value}",
            _request(prompt="hi", params=GenerationParams(max_tokens=8, temperature=value)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "params.temperature",
        )
        for value in (-0.1, 2.5, math.nan, math.inf)
    ),
    (
        "idempotency key with a space",
        _request(prompt="hi", idempotency_key="two words"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key",
    ),
    (
        "idempotency key of 129 chars",
        _request(prompt="hi", idempotency_key="k" * 129),
        grpc.StatusCode.INVALID_ARGUMENT,
        "idempotency_key",
    ),
]


async def test_bad_submissions_name_the_field_and_start_nothing(
    stub: Stub, stack: Settings, tenant_a: tuple[str, str]
) -> None:
    _, key = tenant_a
    upload: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(key))
    cases = [
        *BAD_SUBMISSIONS,
        (
            "input_ref never uploaded",
            _request(input_ref=upload.input_ref),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input_ref",
        ),
        (
            # One byte over max_input_bytes still fits the service's gRPC limit: the service itself refuses it.
            "prompt over max_input_bytes",
            _request(prompt="x" * (stack.max_input_bytes + 1)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "prompt",
        ),
    ]
    for name, request, code, field in cases:
        error = await rpc_error(stub.SubmitJob(request, metadata=auth(key)))
        assert error.code() == code, (name, error)
        assert field in (error.details() or ""), (name, error.details())
    # Far over the limit, gRPC refuses the message before any code of ours runs: the same code.
    error = await rpc_error(stub.SubmitJob(_request(prompt="x" * (stack.max_input_bytes * 2)), metadata=auth(key)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error

    # Nothing started: a good job submitted after them is the tenant's only job once it is listed.
    good = (await submit(stub, key, "a good one", max_tokens=8)).job_id
    assert await listed_once(stub, key, [[good]], 50) == [[good]]


async def test_bad_job_ids_cursors_and_pages_name_the_field(stub: Stub, api_key: str) -> None:
    job_id = (await submit(stub, api_key, "Lydia", max_tokens=8)).job_id
    cases: list[tuple[str, Any, str]] = []
    call: Any
    for bad in ("", "job_", "job_" + "A" * 26, "job_" + "a" * 27, "../etc/passwd", "x" * 300):
        cases += [
            (f"GetJob {bad!r}", stub.GetJob(api.GetJobRequest(job_id=bad), metadata=auth(api_key)), "job_id"),
            (f"CancelJob {bad!r}", stub.CancelJob(api.CancelJobRequest(job_id=bad), metadata=auth(api_key)), "job_id"),
            (f"WatchJob {bad!r}", stub.WatchJob(api.WatchJobRequest(job_id=bad), metadata=auth(api_key)), "job_id"),
        ]
    for bad in ("nonsense", "1.2.3", "999.9.0000000x"):
        call = stub.WatchJob(api.WatchJobRequest(job_id=job_id, after=bad), metadata=auth(api_key))
        cases.append((f"after {bad!r}", call, "after"))
    # Forged tokens, among them dates out of any job's range (they used to end in an OverflowError: UNKNOWN).
    forged = [Cursor(datetime(year, 1, 1, tzinfo=UTC), job_id, "").encode() for year in (1, 9999)]
    for bad in ("%%%not-base64", base64.urlsafe_b64encode(b"not a temporal page token").decode(), *forged):
        call = stub.ListJobs(api.ListJobsRequest(page_token=bad), metadata=auth(api_key))
        cases.append((f"page_token {bad!r}", call, "page_token"))
    call = stub.ListJobs(api.ListJobsRequest(status=99), metadata=auth(api_key))  # type: ignore[arg-type]
    cases.append(("unknown status", call, "status"))
    for size in (-1, 1001):
        call = stub.ListJobs(api.ListJobsRequest(page_size=size), metadata=auth(api_key))
        cases.append((f"page_size {size}", call, "page_size"))
    call = stub.CancelJob(api.CancelJobRequest(job_id=job_id, reason="r" * 1025), metadata=auth(api_key))
    cases.append(("long reason", call, "reason"))

    for name, call, field in cases:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error)
        assert field in (error.details() or ""), (name, error.details())
    # A well-formed id of a job that does not exist is simply not found.
    error = await rpc_error(stub.GetJob(api.GetJobRequest(job_id=VALID_JOB_ID), metadata=auth(api_key)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # The bad cancel changed nothing.
    assert (await wait_terminal(stub, api_key, job_id)).status == JobStatus.JOB_STATUS_SUCCEEDED


class CountingVisibility:
    """The real Temporal client, counting the executions ListJobs' paging reads from visibility."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.read = 0
        self.counts = 0

    async def list_workflows(self, query: str, **options: Any) -> AsyncIterator[WorkflowExecution]:
        async for execution in self.client.list_workflows(query, **options):
            self.read += 1
            yield execution

    async def count_workflows(self, query: str) -> WorkflowExecutionCount:
        self.counts += 1
        return await self.client.count_workflows(query)


async def test_a_page_reads_about_its_own_size_however_many_jobs_share_its_minute(temporal_client: Client) -> None:
    tenant = f"many-{secrets.token_hex(4)}"
    started = [
        await temporal_client.start_workflow(
            WORKFLOW_TYPE,
            id=f"job-list-test-{tenant}-{n}",
            task_queue=f"nobody-polls-{tenant}",  # they wait, cheaply, until terminated below
            search_attributes=TypedSearchAttributes([SearchAttributePair(JOB_TENANT, tenant)]),
        )
        for n in range(300)
    ]
    try:
        query = f"{JOB_WORKFLOWS} AND {tenant_term(tenant)}"
        for _ in range(50):  # visibility follows the starts by a moment
            if (await temporal_client.count_workflows(query)).count == len(started):
                break
            await asyncio.sleep(0.2)
        visibility = CountingVisibility(temporal_client)
        page, token = await listing.newest_first(cast(Client, visibility), query, 5, None, "")
        newest = sorted(
            [e async for e in temporal_client.list_workflows(query)], key=lambda e: (e.start_time, e.id), reverse=True
        )
        assert [e.id for e in page] == [e.id for e in newest[:5]]
        assert token
        read, counts = visibility.read, visibility.counts
        print(f"\nListJobs page of 5 among {len(started)} jobs of one minute: {read} executions read, {counts} counts")
        assert read <= 4 * listing.window_limit(5), read  # it read all 300 before
        assert counts <= 4
    finally:
        for handle in started:
            await handle.terminate("test over")
