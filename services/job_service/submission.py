"""SubmitJob's operation: a checked request becomes a started job, once. The same idempotency key with the same
request answers with the job it started, whether running or long finished; the tenant's quota is reserved
around the start; an uploaded input is checked and pinned before the job can read it."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from jobstream.auth import Caller
from jobstream.job_state import JobMemo
from jobstream.keys_store import KeysFileError
from jobstream.logs import bind_job
from jobstream.payload_store import PayloadStore, StoredObject
from jobstream.pipelines import Pipelines
from jobstream.settings import Settings
from jobstream.tenants import TenantLimits, limits_in
from jobstream.v1.job_pb2 import JobStatus
from services.job_service import job_view
from services.job_service.errors import KeyReused, LimitsUnreadable, OverLimit
from services.job_service.job_start import Submitted, input_size, start_job
from services.job_service.quotas import OverQuota, RunningJobs
from services.job_service.uploads import Uploads
from services.job_service.validation import ValidSubmit


@dataclass(frozen=True)
class Accepted:
    job_id: str
    status: JobStatus


def limits_of(caller: Caller, settings: Settings) -> TenantLimits:
    """The caller's limits, from the keys file as it was read to authenticate this call (not read again)."""
    try:
        return limits_in(caller.keys_file, settings, caller.tenant)
    except KeysFileError as exc:
        raise LimitsUnreadable from exc


class Submission:
    def __init__(
        self, settings: Settings, client: Client, store: PayloadStore, pipelines: Pipelines, uploads: Uploads
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.pipelines = pipelines
        self.uploads = uploads
        self.running = RunningJobs(client, replicas=settings.replicas)

    async def submit(self, caller: Caller, valid: ValidSubmit, fingerprint: str) -> Accepted:
        """The job this request names: started now, or the one its idempotency key started before."""
        if not valid.idempotency_key:
            job_id = job_view.new_job_id()
        else:
            job_id = job_view.idempotent_job_id(caller.tenant, valid.idempotency_key)
            # Answered before the quota is asked or the input copied, so a retry costs neither.
            if (earlier := await self.described(job_id)) is not None:
                return await self.existing(earlier, fingerprint, job_id)
        bind_job(job_id)
        upload = await self.uploads.checked(caller.tenant, valid) if valid.input_ref else None
        limits = limits_of(caller, self.settings)
        try:
            async with self.running.reserve(caller.tenant, limits, input_size(valid, upload)):
                return await self.start(caller.tenant, job_id, valid, fingerprint, limits, upload)
        except OverQuota as over:
            held = "jobs running" if over.limit_name == "max_running_jobs" else "bytes of input in running jobs"
            raise OverLimit(
                f"tenant {caller.tenant} has {over.held} {held}, its limit ({over.limit_name} {over.limit}); "
                "submit again when one has ended"
            ) from over

    async def described(self, job_id: str) -> WorkflowExecutionDescription | None:
        bind_job(job_id)
        try:
            return await self.client.get_workflow_handle(job_id).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return None

    async def start(
        self,
        tenant: str,
        job_id: str,
        valid: ValidSubmit,
        fingerprint: str,
        limits: TenantLimits,
        upload: StoredObject | None,
    ) -> Accepted:
        """The job's input stored where the job reads it, and its workflow started (inside the quota's place)."""
        input_ref = await self.uploads.pinned(tenant, valid.input_ref, upload) if valid.input_ref and upload else None
        submitted = Submitted(
            tenant=tenant,
            job_id=job_id,
            valid=valid,
            fingerprint=fingerprint,
            input_ref=input_ref,
            input_bytes=input_size(valid, upload),
            fairness_weight=limits.fairness_weight,
        )
        try:
            await start_job(self.client, self.store, self.pipelines, self.settings, submitted)
        except WorkflowAlreadyStartedError:
            # Two identical submissions raced; the loser answers with the winner's job.
            description = await self.client.get_workflow_handle(job_id).describe()
            return await self.existing(description, fingerprint, job_id)
        return Accepted(job_id, JobStatus.JOB_STATUS_QUEUED)

    async def existing(self, description: WorkflowExecutionDescription, fingerprint: str, job_id: str) -> Accepted:
        """The earlier job of this idempotency key, if it was started by the same request."""
        if JobMemo.parse(await description.memo()).fingerprint != fingerprint:
            raise KeyReused(job_id)
        job = await job_view.job_view(description)
        return Accepted(job_id, job.status)
