"""The workflow code replays real histories of every kind of job: success, two models, a retry, a cancel.

A change to PipelineWorkflow that would break running jobs (a new, removed or reordered command) fails
here, with Temporal's NondeterminismError. tests/unit/test_replay_offline.py does the same with committed
histories and no servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from jobstream.payload_store import data_converter
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.job_service_client import Stub, auth, job_service, submit, wait_terminal
from tests.stack.temporal_history import history_of
from workers.pipeline.workflows.legacy_pipeline_workflow import LegacyPipelineWorkflow
from workers.pipeline.workflows.pipeline_workflow import PipelineWorkflow
from workers.worker_process import workflow_runner


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


async def cancelled_job(stub: Stub, api_key: str) -> str:
    job_id = (await submit(stub, api_key, pipeline="drill-slow", max_tokens=200)).job_id
    while True:
        job = (await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(api_key))).job
        if job.tokens_generated > 0:
            break
        await asyncio.sleep(0.1)
    await stub.CancelJob(api.CancelJobRequest(job_id=job_id), metadata=auth(api_key))
    return job_id


async def test_every_kind_of_job_history_replays(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client
) -> None:
    jobs = {
        pipeline: (await submit(stub, api_key, "Mr. Darcy", pipeline=pipeline, max_tokens=12)).job_id
        for pipeline in ("generate", "generate-keywords", "drill-oom-once")
    }
    jobs["cancelled"] = await cancelled_job(stub, api_key)
    expected = {
        "generate": JobStatus.JOB_STATUS_SUCCEEDED,
        "generate-keywords": JobStatus.JOB_STATUS_SUCCEEDED,
        "drill-oom-once": JobStatus.JOB_STATUS_SUCCEEDED,
        "cancelled": JobStatus.JOB_STATUS_CANCELLED,
    }
    histories: dict[str, WorkflowHistory] = {}
    for kind, job_id in jobs.items():
        job = await wait_terminal(stub, api_key, job_id)
        assert job.status == expected[kind], (kind, job)
        histories[kind] = await history_of(temporal_client, job_id)

    replayer = Replayer(
        workflows=[PipelineWorkflow, LegacyPipelineWorkflow],
        data_converter=data_converter(stack),
        workflow_runner=workflow_runner(),
    )
    for kind, history in histories.items():
        result = await replayer.replay_workflow(history)  # raises on any nondeterminism
        assert result.replay_failure is None, kind
