"""What one ListJobs page costs: it reads about its own size from Temporal's visibility store, however many
of the tenant's jobs started in the same minute."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionCount
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from jobstream.search_attributes import JOB_TENANT, tenant_term
from jobstream.workflow_io import JOB_WORKFLOWS, WORKFLOW_TYPE
from services.job_service import listing


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
