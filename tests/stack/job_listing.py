"""Reading a tenant's jobs back through ListJobs: one page, every page, and every page once visibility (which
lags the starts a little) has caught up."""

from __future__ import annotations

from typing import Any

from jobstream.v1 import job_service_pb2 as api
from tests.eventually import eventually
from tests.stack.job_service_client import Stub, auth


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
