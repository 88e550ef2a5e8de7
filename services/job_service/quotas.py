"""The running-jobs quotas at SubmitJob: how many jobs a tenant has running, and how many bytes of input they
hold. Both come from Temporal's visibility, at most `max_age_s` old, plus the jobs this process started since
it was read, plus the submits it is starting now: a place is reserved before anything is awaited, so a burst
of concurrent submits cannot all read the same figures and all pass. The queries run at most once a second
per tenant, not once per submit; the bytes are read only for a tenant with a bytes limit.

With R replicas behind one edge, each sees the others' new jobs only in visibility, up to a second late: so
between two reads a replica admits at most its share (1/R) of the headroom it read, and the replicas together
hold a tenant to fewer than its limit plus R running jobs (and its bytes to its bytes limit plus R inputs)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.client import Client

from jobstream.search_attributes import JOB_INPUT_BYTES, tenant_term
from jobstream.tenants import TenantLimits
from jobstream.workflow_io import JOB_WORKFLOWS


@dataclass(frozen=True)
class OverQuota(Exception):
    limit_name: str
    held: int
    limit: int


@dataclass
class _Read:
    when: float
    visible: int  # what visibility said
    local: int = 0  # what this process started since

    @property
    def value(self) -> int:
        return self.visible + self.local


class RunningJobs:
    def __init__(self, client: Client, max_age_s: float = 1.0, replicas: int = 1) -> None:
        self.client = client
        self.max_age_s = max_age_s
        self.replicas = replicas
        self._jobs: dict[str, _Read] = {}
        self._bytes: dict[str, _Read] = {}
        self._starting: Counter[str] = Counter()
        self._starting_bytes: Counter[str] = Counter()
        # One visibility query per tenant at a time: the others wait for its figure rather than run their own.
        self._reading: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _running(self, tenant: str) -> str:
        return f"{JOB_WORKFLOWS} AND {tenant_term(tenant)} AND ExecutionStatus = 'Running'"

    async def count(self, tenant: str) -> _Read:
        async with self._reading[tenant]:
            read = self._jobs.get(tenant)
            if read is None or time.monotonic() - read.when > self.max_age_s:
                read = _Read(time.monotonic(), (await self.client.count_workflows(self._running(tenant))).count)
                self._jobs[tenant] = read
            return read

    async def input_bytes(self, tenant: str) -> _Read:
        """Bytes of input of the tenant's running jobs (each job's JobInputBytes; none for older jobs)."""
        async with self._reading[tenant]:
            read = self._bytes.get(tenant)
            if read is None or time.monotonic() - read.when > self.max_age_s:
                held = 0
                async for job in self.client.list_workflows(self._running(tenant)):
                    held += job.typed_search_attributes.get(JOB_INPUT_BYTES) or 0
                read = _Read(time.monotonic(), held)
                self._bytes[tenant] = read
            return read

    @contextlib.asynccontextmanager
    async def reserve(self, tenant: str, limits: TenantLimits, input_bytes: int) -> AsyncIterator[None]:
        """A place for one more running job of `input_bytes` (OverQuota when there is none; a limit of 0: none)
        for the block, which starts the job: if it returns, the job counts as started; if it raises, the place
        is freed."""
        if limits.max_running_jobs:
            jobs = await self.count(tenant)
            mine = jobs.local + self._starting[tenant]
            if jobs.visible + self.replicas * mine >= limits.max_running_jobs:
                raise OverQuota("max_running_jobs", jobs.value + self._starting[tenant], limits.max_running_jobs)
        if limits.max_input_bytes_in_flight:
            held = await self.input_bytes(tenant)
            mine = held.local + self._starting_bytes[tenant] + input_bytes
            if held.visible + self.replicas * mine > limits.max_input_bytes_in_flight:
                raise OverQuota(
                    "max_input_bytes_in_flight",
                    held.value + self._starting_bytes[tenant],
                    limits.max_input_bytes_in_flight,
                )
        # From here to the end of the block nothing else reads a stale figure.
        self._starting[tenant] += 1
        self._starting_bytes[tenant] += input_bytes
        try:
            yield
        finally:
            self._starting[tenant] -= 1
            self._starting_bytes[tenant] -= input_bytes
        self._started(tenant, input_bytes)

    def _started(self, tenant: str, input_bytes: int) -> None:
        if (jobs := self._jobs.get(tenant)) is not None:
            jobs.local += 1
        if (held := self._bytes.get(tenant)) is not None:
            held.local += input_bytes
