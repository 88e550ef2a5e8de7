"""The job workflow types this build runs, and the gate that keeps an old one until its last job has ended.

A workflow runs to its end on the code of its type; `legacy_pipeline_workflow.py` exists only for jobs started
as `PipelineWorkflow`. Removing a type while a job of it is open would leave that job with no worker, forever:
so a CPU worker refuses to start when open jobs run on a job type it does not register, and the rollout of
such a build stalls while the previous workers finish them. `python -m workers.workflow_types` prints how many
open jobs each type has: a type may go once its count is 0 (and its histories are no longer replayed in tests).

Why this and not Worker Deployment Versioning (pinned workflows on the build that started them): versioning
needs every deployment to keep old builds' workers running until they drain, which neither the local stack,
compose nor the Helm chart do; this gate needs nothing but a visibility count at start."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from temporalio.client import Client

from jobstream.settings import get_settings
from jobstream.temporal_client import connect
from jobstream.workflow_io import LEGACY_WORKFLOW_TYPE, WORKFLOW_TYPE
from workers.pipeline.workflows.legacy_pipeline_workflow import LegacyPipelineWorkflow
from workers.pipeline.workflows.pipeline_workflow import PipelineWorkflow

# Every job workflow type there has ever been (a type's name outlives its code).
JOB_WORKFLOW_TYPES = (WORKFLOW_TYPE, LEGACY_WORKFLOW_TYPE)
# What this build's CPU worker registers, by type name (removing a type's code removes its entry).
JOB_WORKFLOWS: dict[str, type] = {WORKFLOW_TYPE: PipelineWorkflow, LEGACY_WORKFLOW_TYPE: LegacyPipelineWorkflow}


async def open_jobs(client: Client, workflow_type: str) -> int:
    query = f"WorkflowType = '{workflow_type}' AND ExecutionStatus = 'Running'"
    return (await client.count_workflows(query)).count


async def unserved(client: Client, registered: Iterable[str]) -> dict[str, int]:
    """Job workflow types with open jobs that `registered` lacks, and how many jobs each has open."""
    registered = set(registered)
    missing = [name for name in JOB_WORKFLOW_TYPES if name not in registered]
    counts = {name: await open_jobs(client, name) for name in missing}
    return {name: count for name, count in counts.items() if count}


async def refuse_if_unserved(client: Client, registered: Iterable[str]) -> None:
    """Exit with the reason when open jobs run on a job workflow type this build does not register."""
    missing = await unserved(client, registered)
    if missing:
        listed = ", ".join(f"{count} open jobs of {name}" for name, count in missing.items())
        raise SystemExit(
            f"refusing to start: {listed}, a workflow type this build does not register; run a build that has it "
            "until they end (python -m workers.workflow_types counts them)"
        )


async def main() -> None:
    client = await connect(get_settings())
    for name in JOB_WORKFLOW_TYPES:
        print(f"{name}: {await open_jobs(client, name)} open jobs")


if __name__ == "__main__":
    asyncio.run(main())
