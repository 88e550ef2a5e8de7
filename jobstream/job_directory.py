"""What the event readers need to know about a job from Temporal: its owner, where its events start, and
(once its events have left Kafka) a terminal event rebuilt from its final state."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from jobstream import cursors
from jobstream.event_hub import NotStartedYet
from jobstream.event_log import LogLocator
from jobstream.job_events import build_event
from jobstream.job_state import JobMemo, Status, job_status
from jobstream.payload_store import PayloadStore
from jobstream.search_attributes import JOB_TENANT
from jobstream.shared_calls import SharedCalls
from jobstream.v1.event_pb2 import JobEvent
from jobstream.workflow_io import EventSpec, JobCancelledSpec, JobCompletedSpec, JobFailedSpec, JobResult

_V = TypeVar("_V")
CACHE_SIZE = 10_000  # jobs whose tenant (and, once started, first offset) a process remembers


class JobDirectory:
    def __init__(self, client: Client, store: PayloadStore) -> None:
        self.client = client
        self.store = store
        # A job's tenant never changes (random ids are unique; idempotent ids are derived from the tenant),
        # so every SSE connection to a job after the first is authorised without asking Temporal again.
        self._tenants: OrderedDict[str, str] = OrderedDict()
        # One lookup per job at a time: a thousand viewers opening one job at once ask Temporal once.
        self._lookup_tenant = SharedCalls(self._tenant_of)
        # Where a job's story starts never changes either, once it has started: later viewers read it here.
        self._locators: OrderedDict[str, LogLocator] = OrderedDict()

    async def describe(self, job_id: str) -> WorkflowExecutionDescription | None:
        try:
            return await self.client.get_workflow_handle(job_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def tenant(self, job_id: str) -> str | None:
        cached = self._tenants.get(job_id)
        if cached is not None:
            return cached
        return await self._lookup_tenant(job_id)

    async def _tenant_of(self, job_id: str) -> str | None:
        description = await self.describe(job_id)
        tenant = description.typed_search_attributes.get(JOB_TENANT) if description else None
        if tenant is not None:
            _remember(self._tenants, job_id, tenant)
        return tenant

    async def locate(self, job_id: str) -> LogLocator | None:
        cached = self._locators.get(job_id)
        if cached is not None:
            return cached
        description = await self.describe(job_id)
        if description is None:
            return None
        memo = JobMemo.parse(await description.memo())
        if memo.log_partition is not None and memo.log_offset is not None:
            locator = LogLocator(memo.log_partition, memo.log_offset)
            _remember(self._locators, job_id, locator)
            return locator
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise NotStartedYet(job_id)
        return None

    async def final_event(self, job_id: str) -> JobEvent | None:
        """The terminal event of a finished job, rebuilt from its final state."""
        description = await self.describe(job_id)
        if description is None or description.status == WorkflowExecutionStatus.RUNNING:
            return None
        memo = JobMemo.parse(await description.memo())
        end = {"job_id": job_id, "cursor": cursors.terminal(), "time": description.close_time}
        status = job_status(description.status, memo)
        spec: EventSpec
        if status == Status.SUCCEEDED:
            result = await self.client.get_workflow_handle(job_id, result_type=JobResult).result()
            spec = JobCompletedSpec(
                result_text=result.text,
                result_ref=result.ref,
                tokens=result.tokens,
                usage=result.usage,
                finish_reason=result.finish_reason,
                **end,
            )
        elif status == Status.CANCELLED:
            spec = JobCancelledSpec(
                stage=memo.stage,
                tokens=memo.tokens_generated,
                reason=memo.cancel_reason,
                usage=memo.usage(),
                finish_reason=memo.finish_reason() or "cancelled",
                **end,
            )
        else:
            code, message = memo.error_or_default(description.status)
            spec = JobFailedSpec(stage=memo.stage, error_code=code, error_message=message, usage=memo.usage(), **end)
        return await build_event(spec, self.store)


def _remember(cache: OrderedDict[str, _V], job_id: str, value: _V) -> None:
    cache[job_id] = value
    if len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
