"""Reading one job for GetJob, CancelJob and WatchJob: whether it is the caller's (a job of another tenant does
not exist for them), and its view: state, the running stage's progress, and once it succeeded its result."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from jobstream.job_events import set_result, usage_proto
from jobstream.payload_store import PayloadStore
from jobstream.v1.job_pb2 import Job
from jobstream.workflow_io import JobResult, StageProgress
from services.job_service import job_view


class JobReader:
    def __init__(self, client: Client, store: PayloadStore) -> None:
        self.client = client
        self.store = store

    async def owned(
        self, tenant: str, job_id: str
    ) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription] | None:
        """The job's workflow and its description, if it exists and is `tenant`'s."""
        handle = self.client.get_workflow_handle(job_id)
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return (handle, description) if job_view.owner_of(description) == tenant else None

    async def view(self, job_id: str, description: WorkflowExecutionDescription, *, with_result: bool) -> Job:
        """The job's state and its running stage's progress; `with_result` (GetJob), once it succeeded, its
        result too (read from the workflow's result; a claim-checked one as a fresh URL). CancelJob answers
        without: it would read the result only to throw it away."""
        job = await job_view.job_view(description)
        job_view.add_live_details(job, description, await self.stage_progress(description))
        if with_result and description.status == WorkflowExecutionStatus.COMPLETED:
            result = await self.client.get_workflow_handle(job_id, result_type=JobResult).result()
            job.tokens_generated = result.tokens
            job.usage.CopyFrom(usage_proto(result.usage))
            job.finish_reason = result.finish_reason
            await set_result(job, result.text, result.ref, self.store)
        return job

    async def stage_progress(self, description: WorkflowExecutionDescription) -> StageProgress | None:
        """The running model stage's heartbeat details (CPU stages heartbeat without any)."""
        for pending in description.raw_description.pending_activities:
            if pending.heartbeat_details.payloads:
                details = await self.client.data_converter.decode(pending.heartbeat_details.payloads, [StageProgress])
                if details:
                    return StageProgress.model_validate(details[0])
        return None
