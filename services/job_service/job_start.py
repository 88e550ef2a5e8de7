"""Starting a job's workflow once SubmitJob has checked, authorized and admitted it: the input where the job reads
it (a large prompt claim-checked into MinIO at the front door), the seed drawn when none was given, the workflow
started with the tenant's fairness, the search attributes ListJobs and the quotas read, and the first memo."""

from __future__ import annotations

import random
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from jobstream.job_state import JobMemo, Status
from jobstream.payload_store import PayloadStore, StoredObject
from jobstream.pipelines import Pipelines
from jobstream.search_attributes import JOB_INPUT_BYTES, JOB_PIPELINE, JOB_STATUS, JOB_TENANT
from jobstream.settings import Settings
from jobstream.temporal_client import WORKFLOW_QUEUE
from jobstream.workflow_io import WORKFLOW_TYPE, GenerationParams, JobInput
from services.job_service.validation import ValidSubmit

MAX_SEED = 2**32 - 1


def input_size(valid: ValidSubmit, upload: StoredObject | None) -> int:
    """Bytes of the job's input, as the quotas and the JobInputBytes search attribute count them."""
    return upload.size if upload else len((valid.prompt or "").encode("utf-8"))


@dataclass(frozen=True)
class Submitted:
    """An admitted submission: whose, which job, what (checked), and what the quotas counted of it."""

    tenant: str
    job_id: str
    valid: ValidSubmit
    fingerprint: str  # of the request, so a retry with the same idempotency key can be told from a reuse
    input_ref: str | None  # the pinned copy of an upload
    input_bytes: int
    fairness_weight: float


async def start_job(
    client: Client, store: PayloadStore, pipelines: Pipelines, settings: Settings, job: Submitted
) -> None:
    """Start the job's workflow (WorkflowAlreadyStartedError when an identical submission won the race)."""
    valid, prompt, input_ref = job.valid, job.valid.prompt, job.input_ref
    if prompt is not None and len(prompt.encode("utf-8")) > settings.payload_threshold_bytes:
        # Claim check at the front door: a large prompt never enters Temporal.
        input_ref = await store.put(f"inputs/{job.tenant}", prompt.encode("utf-8"), "text/plain")
        prompt = None
    stages = pipelines.resolve(valid.pipeline)
    params = valid.params
    seed = params.seed if params.seed is not None else random.randint(0, MAX_SEED)
    workflow_input = JobInput(
        job_id=job.job_id,
        tenant=job.tenant,
        pipeline=valid.pipeline,
        stages=stages,
        prompt=prompt,
        input_ref=input_ref,
        params=GenerationParams(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            seed=seed,
            top_p=params.top_p,
            stop=params.stop,
        ),
    )
    await client.start_workflow(
        WORKFLOW_TYPE,
        workflow_input,
        id=job.job_id,
        task_queue=WORKFLOW_QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        # Its activities inherit it: every queue the job waits on serves the tenants in turn.
        priority=Priority(fairness_key=job.tenant, fairness_weight=job.fairness_weight),
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(JOB_TENANT, job.tenant),
                SearchAttributePair(JOB_STATUS, Status.QUEUED.value),
                SearchAttributePair(JOB_PIPELINE, valid.pipeline),
                SearchAttributePair(JOB_INPUT_BYTES, job.input_bytes),
            ]
        ),
        memo=JobMemo(
            pipeline=valid.pipeline,
            status=Status.QUEUED,
            stage_count=len(stages),
            fingerprint=job.fingerprint,
            **({"metadata": valid.metadata} if valid.metadata else {}),
        ).changes(),
    )
