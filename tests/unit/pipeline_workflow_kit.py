"""How PipelineWorkflow's unit tests start a job and read what it left behind.

`job()` runs a job of a declared pipeline on its own task queues, with a workflow worker and stage workers over
the mocked activities of tests/unit/pipeline_workflow_fakes.py; the readers below answer from the workflow's
memo, search attributes and the events it published; the stage adjusters change a declared stage's policy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from jobstream import cursors
from jobstream.job_state import JobMemo, StageState
from jobstream.pipelines import ResolvedStage, load_pipelines
from jobstream.search_attributes import JOB_PIPELINE, JOB_STATUS, JOB_TENANT
from jobstream.workflow_io import GenerationParams, JobInput, JobResult, StageOutput
from tests.unit.pipeline_workflow_fakes import Events, Stages
from workers.pipeline.workflows.pipeline_workflow import PipelineWorkflow
from workers.worker_process import workflow_runner

TENANT = "tenant-a"
PROMPT = "  Once   upon\ta time  "
# Cancellation reaches an activity in a heartbeat's response: heartbeat often, so a cancel lands at once.
HEARTBEAT_THROTTLE = timedelta(milliseconds=50)


@dataclasses.dataclass
class Job:
    client: Client
    input: JobInput
    events: Events
    stages: Stages

    async def start(self) -> WorkflowHandle[Any, JobResult]:
        # As the JobService starts it: QUEUED until the workflow says otherwise.
        return await self.client.start_workflow(
            PipelineWorkflow.run,
            self.input,
            id=self.input.job_id,
            task_queue=self.input.job_id,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(JOB_TENANT, TENANT),
                    SearchAttributePair(JOB_STATUS, "QUEUED"),
                    SearchAttributePair(JOB_PIPELINE, self.input.pipeline),
                ]
            ),
            memo=JobMemo(pipeline=self.input.pipeline, stage_count=len(self.input.stages)).changes(),
        )


def workflow_worker(client: Client, queue: str, events: Events) -> Worker:
    # The local activities run beside the workflow, as in the CPU worker.
    activities: list[Callable[..., Any]] = [events.publish_event, events.publish_events, events.run_local_stage]
    return Worker(
        client, task_queue=queue, workflows=[PipelineWorkflow], activities=activities, workflow_runner=workflow_runner()
    )


def own_queues(stages: list[ResolvedStage], prefix: str) -> list[ResolvedStage]:
    """The pipeline's stages on this test's own queues, so no other test's worker ever sees its tasks."""
    return [stage.model_copy(update={"queue": f"{prefix}/{stage.queue}"}) for stage in stages]


@contextlib.asynccontextmanager
async def job(
    client: Client,
    stages: Stages,
    *,
    pipeline: str = "generate",
    adjust: Callable[[ResolvedStage], ResolvedStage] = lambda stage: stage,
    serve_workflow: bool = True,
    serve_stages: bool = True,
) -> AsyncIterator[Job]:
    """A job of `pipeline`, with its workflow worker and stage workers running unless told not to."""
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    resolved = [adjust(stage) for stage in own_queues(load_pipelines().resolve(pipeline), job_id)]
    job_input = JobInput(
        job_id=job_id,
        tenant=TENANT,
        pipeline=pipeline,
        stages=resolved,
        prompt=PROMPT,
        params=GenerationParams(max_tokens=8, seed=7),
    )
    events = Events(stages)
    workers = [workflow_worker(client, job_id, events)] if serve_workflow else []
    if serve_stages:
        by_kind: dict[str, Callable[..., Awaitable[StageOutput]]] = {
            "preprocess": stages.preprocess,
            "model": stages.run_model,
            "postprocess": stages.postprocess,
        }
        for queue in sorted({stage.queue for stage in resolved}):
            kinds = sorted({stage.kind for stage in resolved if stage.queue == queue})
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    activities=[by_kind[kind] for kind in kinds],
                    max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                    default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                )
            )
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield Job(client, job_input, events, stages)


async def memo_of(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    return dict(await (await handle.describe()).memo())


async def records_of(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, str, StageState, int, int]]:
    """The memo's stage records, without their times (checked to be in order)."""
    records = JobMemo.parse(await memo_of(handle)).stages
    for record in records:
        assert record.state == StageState.PENDING or record.start_time is not None
        if record.end_time is not None:
            assert record.start_time is not None
            assert record.start_time <= record.end_time
        assert (record.end_time is None) == (record.state in (StageState.PENDING, StageState.RUNNING))
    return [(r.name, r.kind, r.state, r.attempts, r.tokens) for r in records]


async def status_of(handle: WorkflowHandle[Any, Any]) -> tuple[WorkflowExecutionStatus | None, str | None]:
    description = await handle.describe()
    return description.status, description.typed_search_attributes.get(JOB_STATUS)


async def assert_cancelled(handle: WorkflowHandle[Any, JobResult]) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert await status_of(handle) == (WorkflowExecutionStatus.CANCELED, "CANCELLED")


# The lines of `Events.story()` the tests expect: (type, cursor, stage, stage index, stage count).
def started(stage: str, index: int, count: int = 3) -> tuple[str, str, str, int, int]:
    return ("stage.started", cursors.stage_started(index), stage, index, count)


def completed(stage: str, index: int, count: int = 3) -> tuple[str, str, str, int, int]:
    return ("stage.completed", cursors.stage_completed(index), stage, index, count)


JOB_STARTED = ("job.started", cursors.job_started(), "", 0, 0)


def quick_retry(stage: ResolvedStage) -> ResolvedStage:
    """The declared policy, but its first retry after 50 ms instead of 1 s."""
    retry = stage.retry.model_copy(update={"initial_interval": timedelta(milliseconds=50)})
    return stage.model_copy(update={"retry": retry})


def remote(stage: ResolvedStage) -> ResolvedStage:
    """The stage as a remote activity even where it is declared local: its task waits on its queue, and the
    memo shows it running (a local stage's memo changes land with the workflow task that ran it)."""
    return stage.model_copy(update={"local": False})
