"""The running-jobs quota at SubmitJob. The count comes from Temporal's visibility, at most `max_age_s` old,
plus the jobs this process started since it was read, plus the submits it is starting now: a place is
reserved before anything is awaited, so a burst of concurrent submits cannot all read the same count and all
pass. The query runs at most once a second per tenant, not once per submit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.client import Client

from jobstream.search_attributes import tenant_term
from jobstream.workflow_io import JOB_WORKFLOWS


@dataclass(frozen=True)
class OverQuota(Exception):
    running: int
    limit: int


class RunningJobs:
    def __init__(self, client: Client, max_age_s: float = 1.0) -> None:
        self.client = client
        self.max_age_s = max_age_s
        self._counted: dict[str, tuple[float, int]] = {}  # tenant -> (when read, count)
        self._starting: Counter[str] = Counter()
        # One visibility query per tenant at a time: the others wait for its count rather than run their own.
        self._reading: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def count(self, tenant: str) -> int:
        async with self._reading[tenant]:
            now = time.monotonic()
            read = self._counted.get(tenant)
            if read is None or now - read[0] > self.max_age_s:
                query = f"{JOB_WORKFLOWS} AND {tenant_term(tenant)} AND ExecutionStatus = 'Running'"
                read = (now, (await self.client.count_workflows(query)).count)
                self._counted[tenant] = read
            return read[1]

    @contextlib.asynccontextmanager
    async def reserve(self, tenant: str, limit: int) -> AsyncIterator[None]:
        """A place for one more running job (OverQuota when there is none; 0: no limit) for the block, which
        starts the job: if it returns, the job counts as started; if it raises, the place is freed."""
        if limit:
            running = await self.count(tenant) + self._starting[tenant]
            if running >= limit:
                raise OverQuota(running, limit)
        self._starting[tenant] += 1  # from here to the end of the block nothing else reads a stale count
        try:
            yield
        finally:
            self._starting[tenant] -= 1
        self._started(tenant)

    def _started(self, tenant: str) -> None:
        read = self._counted.get(tenant)
        if read is not None:
            self._counted[tenant] = (read[0], read[1] + 1)
