"""The running-jobs quota at SubmitJob. The count comes from Temporal's visibility, at most `max_age_s` old,
plus the jobs this process started since it was read: a burst of submits counts itself, and the query runs
at most once a second per tenant, not once per submit."""

from __future__ import annotations

import time

from temporalio.client import Client

from jobstream.search_attributes import tenant_term
from jobstream.workflow_io import JOB_WORKFLOWS


class RunningJobs:
    def __init__(self, client: Client, max_age_s: float = 1.0) -> None:
        self.client = client
        self.max_age_s = max_age_s
        self._counted: dict[str, tuple[float, int]] = {}  # tenant -> (when read, count)

    async def count(self, tenant: str) -> int:
        now = time.monotonic()
        read = self._counted.get(tenant)
        if read is None or now - read[0] > self.max_age_s:
            query = f"{JOB_WORKFLOWS} AND {tenant_term(tenant)} AND ExecutionStatus = 'Running'"
            read = (now, (await self.client.count_workflows(query)).count)
            self._counted[tenant] = read
        return read[1]

    def started(self, tenant: str) -> None:
        read = self._counted.get(tenant)
        if read is not None:
            self._counted[tenant] = (read[0], read[1] + 1)
