"""The gate that keeps an old job workflow type until its last job has ended (workers/workflow_types.py), against
the stack's Temporal: an open job of a type a build does not register stops that build's CPU worker."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client

from jobstream.workflow_io import LEGACY_WORKFLOW_TYPE, WORKFLOW_TYPE
from tests.eventually import eventually
from workers.workflow_types import JOB_WORKFLOWS, refuse_if_unserved, unserved


async def test_a_build_without_a_type_that_open_jobs_run_on_refuses_to_start(temporal_client: Client) -> None:
    # An open job of the legacy type: started on a queue no worker polls, so it stays open until terminated.
    handle = await temporal_client.start_workflow(
        LEGACY_WORKFLOW_TYPE, id=f"legacy-gate-{uuid.uuid4().hex}", task_queue="jobstream-test-nobody-polls"
    )
    try:
        without_legacy = [WORKFLOW_TYPE]

        async def missing_now() -> dict[str, int]:
            return await unserved(temporal_client, without_legacy)

        missing: dict[str, int] = await eventually(missing_now, within_s=20, what="the open legacy job counted")
        assert missing[LEGACY_WORKFLOW_TYPE] >= 1
        with pytest.raises(SystemExit, match=f"open jobs of {LEGACY_WORKFLOW_TYPE}"):
            await refuse_if_unserved(temporal_client, without_legacy)
        await refuse_if_unserved(temporal_client, JOB_WORKFLOWS)  # this build has it: starts
    finally:
        await handle.terminate("test over")
