"""PipelineWorkflow against a real Temporal dev server with every activity mocked: no Kafka, MinIO or Triton.

One dev server (the CLI binary the bootstrap builds) serves the whole file; each test runs its own job on
its own task queues, with mocked `preprocess`/`run_model`/`postprocess` activities and a mocked
`publish_event`/`publish_events` local activities that record every event the workflow asks to publish, and a
mocked `run_local_stage` local activity that runs a local CPU stage through the same `Stages` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.gobuild import find_existing
from devstack.temporal_server import TEMPORAL_CLI_VERSION
from jobstream import cursors
from jobstream.event_log import LogLocator
from jobstream.job_state import JobMemo, StageState
from jobstream.payload_store import REF_SCHEME, data_converter
from jobstream.pipelines import ResolvedStage, load_pipelines
from jobstream.search_attributes import JOB_PIPELINE, JOB_STATUS, JOB_TENANT
from jobstream.settings import Settings
from jobstream.workflow_io import (
    CANCEL_REASON_SIGNAL,
    EventSpec,
    GenerationParams,
    JobCancelledSpec,
    JobCompletedSpec,
    JobFailedSpec,
    JobInput,
    JobResult,
    JobStartedSpec,
    LocalStage,
    LocalStageResult,
    StageInput,
    StageOutput,
    Usage,
)
from workers.pipeline.activities.publish import after_stage
from workers.pipeline.workflows.pipeline_workflow import PipelineWorkflow

PARTITION = 3
FIRST_OFFSET = 100
TENANT = "tenant-a"
PROMPT = "  Once   upon\ta time  "
# Cancellation reaches an activity in a heartbeat's response: heartbeat often, so a cancel lands at once.
HEARTBEAT_THROTTLE = timedelta(milliseconds=50)
WAIT_S = 10.0


def temporal_binary() -> Path | None:
    """The binary devstack.temporal_server.install() would use, without building one: $JOBSTREAM_TEMPORAL_BIN, PATH,
    then the bootstrap's cache slot."""
    existing = find_existing("temporal", "JOBSTREAM_TEMPORAL_BIN")
    if existing:
        return existing
    cached = Settings().cache_dir / f"temporal-{TEMPORAL_CLI_VERSION}" / "temporal"
    return cached if cached.is_file() else None


@pytest_asyncio.fixture(scope="session")
async def client() -> AsyncIterator[Client]:
    binary = temporal_binary()
    if binary is None:
        pytest.skip(
            f"no Temporal CLI: `make bootstrap` builds it (temporal-{TEMPORAL_CLI_VERSION} "
            "under the cache dir) or name one with JOBSTREAM_TEMPORAL_BIN"
        )
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary),
        # The project's converter; every payload here is far under the claim-check threshold, so the
        # external store (a MinIO that is not there) is never asked.
        data_converter=data_converter(Settings(minio_port=1)),
        search_attributes=[JOB_TENANT, JOB_STATUS, JOB_PIPELINE],
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


class Events:
    """The mocked local activities: each published spec recorded, answered with [partition, offset]; a local
    stage runs through `stages` between the events before and after it, as `EventActivities` does."""

    def __init__(self, stages: Stages) -> None:
        self.stages = stages
        self.specs: list[EventSpec] = []
        self.changed = asyncio.Event()

    @activity.defn(name="publish_events")
    async def publish_events(self, specs: list[EventSpec]) -> list[LogLocator]:
        return [await self.publish_event(spec) for spec in specs]

    @activity.defn(name="run_local_stage")
    async def run_local_stage(self, local: LocalStage) -> LocalStageResult:
        before = await self.publish_events(local.publish_before)
        run = self.stages.preprocess if local.stage.stage.kind == "preprocess" else self.stages.postprocess
        output = await run(local.stage)
        await self.publish_events([after_stage(spec, output) for spec in local.publish_after])
        return LocalStageResult(output=output, published_before=before)

    @activity.defn(name="publish_event")
    async def publish_event(self, spec: EventSpec) -> LogLocator:
        self.specs.append(spec)
        self.changed.set()
        return LogLocator(PARTITION, FIRST_OFFSET + len(self.specs) - 1)

    def story(self) -> list[tuple[str, str, str, int, int]]:
        # Each event type carries its own fields: a job event has no stage.
        return [
            (s.type, s.cursor, getattr(s, "stage", ""), getattr(s, "stage_index", 0), getattr(s, "stage_count", 0))
            for s in self.specs
        ]

    async def wait_for(self, type_: str, stage: str = "") -> EventSpec:
        async def seen() -> EventSpec:
            while True:
                for spec in self.specs:
                    if spec.type == type_ and getattr(spec, "stage", "") == stage:
                        return spec
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(seen(), WAIT_S)


class Stages:
    """Mocked stage activities: plain text transforms by default; tests override the `do_*` hooks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, StageInput]] = []

    def record(self, name: str, stage: StageInput) -> None:
        self.calls.append((name, activity.info().attempt, stage))

    def attempts(self) -> list[tuple[str, int]]:
        return [(name, attempt) for name, attempt, _ in self.calls]

    @activity.defn(name="preprocess")
    async def preprocess(self, stage: StageInput) -> StageOutput:
        self.record("preprocess", stage)
        return await self.do_preprocess(stage)

    @activity.defn(name="run_model")
    async def run_model(self, stage: StageInput) -> StageOutput:
        self.record("run_model", stage)
        return await self.do_run_model(stage)

    @activity.defn(name="postprocess")
    async def postprocess(self, stage: StageInput) -> StageOutput:
        self.record("postprocess", stage)
        return await self.do_postprocess(stage)

    async def do_preprocess(self, stage: StageInput) -> StageOutput:
        return StageOutput(text=" ".join((stage.text or "").split()), attempt=activity.info().attempt)

    async def do_run_model(self, stage: StageInput) -> StageOutput:
        attempt = activity.info().attempt
        # Each attempt reads its 4-token prompt: the usage counts them all.
        return StageOutput(
            text=f"{stage.text} there lived",
            tokens=2,
            attempt=attempt,
            prompt_tokens=4 * attempt,
            finish_reason="length",
        )

    async def do_postprocess(self, stage: StageInput) -> StageOutput:
        return StageOutput(text=stage.text, attempt=activity.info().attempt)


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
    return Worker(client, task_queue=queue, workflows=[PipelineWorkflow], activities=activities)


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


def started(stage: str, index: int, count: int = 3) -> tuple[str, str, str, int, int]:
    return ("stage.started", cursors.stage_started(index), stage, index, count)


def completed(stage: str, index: int, count: int = 3) -> tuple[str, str, str, int, int]:
    return ("stage.completed", cursors.stage_completed(index), stage, index, count)


JOB_STARTED = ("job.started", cursors.job_started(), "", 0, 0)


async def test_generate_succeeds(client: Client) -> None:
    async with job(client, Stages()) as j:
        handle = await j.start()
        result = await handle.result()
        assert result == JobResult(
            text="Once upon a time there lived",
            ref=None,
            tokens=2,
            usage=Usage(prompt_tokens=4, output_tokens=2),
            finish_reason="length",
        )

        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            completed("preprocess", 0),
            started("generate", 1),
            completed("generate", 1),
            started("postprocess", 2),
            completed("postprocess", 2),
            ("job.completed", cursors.terminal(), "", 0, 0),
        ]
        first, last = j.events.specs[0], j.events.specs[-1]
        assert isinstance(first, JobStartedSpec)
        assert isinstance(last, JobCompletedSpec)
        assert (first.job_id, first.pipeline, first.stages) == (
            j.input.job_id,
            "generate",
            ["preprocess", "generate", "postprocess"],
        )
        assert {spec.job_id for spec in j.events.specs} == {j.input.job_id}
        assert (last.result_text, last.result_ref, last.tokens) == ("Once upon a time there lived", None, 2)
        assert (last.usage, last.finish_reason) == (Usage(prompt_tokens=4, output_tokens=2), "length")

        # Each stage got the previous one's output, on its own queue, with the job's parameters.
        assert j.stages.attempts() == [("preprocess", 1), ("run_model", 1), ("postprocess", 1)]
        inputs = [stage for _, _, stage in j.stages.calls]
        assert [s.text for s in inputs] == [PROMPT, "Once upon a time", "Once upon a time there lived"]
        assert [(s.stage_index, s.stage_count, s.stage.name) for s in inputs] == [
            (0, 3, "preprocess"),
            (1, 3, "generate"),
            (2, 3, "postprocess"),
        ]
        assert {s.params for s in inputs} == {GenerationParams(max_tokens=8, seed=7)}
        assert inputs[1].stage.queue == f"{j.input.job_id}/jobstream-gpu-tinylm"

        memo = await memo_of(handle)
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.SUCCEEDED, 1, 2),  # (tokens)
            ("postprocess", "postprocess", StageState.SUCCEEDED, 1, 0),
        ]
        del memo["stages"]
        assert memo == {
            "pipeline": "generate",
            "stage_count": 3,
            "status": "SUCCEEDED",
            "stage": "postprocess",
            "stages_completed": 3,
            "tokens_generated": 2,
            "attempt": 1,
            # Where job.started landed: the first offset the mocked log handed out.
            "log_partition": PARTITION,
            "log_offset": FIRST_OFFSET,
        }
        assert await status_of(handle) == (WorkflowExecutionStatus.COMPLETED, "SUCCEEDED")


async def test_generate_reaches_the_model_in_one_workflow_task(client: Client) -> None:
    """The trips before the first token: one workflow task and one local activity (job.started, stage.started,
    the local preprocess, stage.completed and the model's stage.started) before run_model is scheduled, and
    one memo upsert per workflow task. The job's end costs one trip of its own: its event goes out once the
    verdict is recorded."""
    async with job(client, Stages()) as j:
        handle = await j.start()
        await handle.result()
        events = [event.event_type for event in (await handle.fetch_history()).events]
    scheduled = events.index(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    before_model = events[:scheduled]
    assert before_model.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1
    # Two markers: the patch's and the one local activity's.
    assert before_model.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 2
    assert before_model.count(EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED) == 1
    assert events.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 3
    # One per local stage and the patch's: job.completed goes out on an activity after the verdict.
    assert events.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 3
    assert events.count(EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED) == 2
    # RUNNING (with the patch's TemporalChangeVersion) and SUCCEEDED.
    assert events.count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES) == 3
    # The model stage, and the terminal event's publish.
    assert events.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 2
    # The verdict is recorded (memo and status) by the task that schedules the publish of the job's end.
    publish = len(events) - 1 - events[::-1].index(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    assert EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED in events[publish - 3 : publish]


class OutOfMemoryOnce(Stages):
    def __init__(self) -> None:
        super().__init__()
        self.hold_postprocess = asyncio.Event()
        self.in_postprocess = asyncio.Event()

    async def do_run_model(self, stage: StageInput) -> StageOutput:
        if activity.info().attempt == 1:
            raise ApplicationError("CUDA out of memory at token 5", type="GpuOutOfMemory")
        return await super().do_run_model(stage)

    async def do_postprocess(self, stage: StageInput) -> StageOutput:
        self.in_postprocess.set()
        await self.hold_postprocess.wait()
        return await super().do_postprocess(stage)


def quick_retry(stage: ResolvedStage) -> ResolvedStage:
    """The declared policy, but its first retry after 50 ms instead of 1 s."""
    retry = stage.retry.model_copy(update={"initial_interval": timedelta(milliseconds=50)})
    return stage.model_copy(update={"retry": retry})


def remote(stage: ResolvedStage) -> ResolvedStage:
    """The stage as a remote activity even where it is declared local: its task waits on its queue, and the
    memo shows it running (a local stage's memo changes land with the workflow task that ran it)."""
    return stage.model_copy(update={"local": False})


async def test_model_stage_retried_after_retryable_error(client: Client) -> None:
    stages = OutOfMemoryOnce()
    async with job(client, stages, adjust=lambda stage: quick_retry(remote(stage))) as j:
        handle = await j.start()
        # Held in postprocess: the memo now tells the model stage's outcome, and it took two attempts.
        await asyncio.wait_for(stages.in_postprocess.wait(), WAIT_S)
        memo = await memo_of(handle)
        assert (memo["status"], memo["stage"], memo["stages_completed"], memo["attempt"]) == (
            "RUNNING",
            "postprocess",
            2,
            2,
        )
        assert memo["tokens_generated"] == 2
        assert await status_of(handle) == (WorkflowExecutionStatus.RUNNING, "RUNNING")
        stages.hold_postprocess.set()
        model_completed = next(s for s in j.events.specs if s.type == "stage.completed" and s.stage == "generate")
        assert model_completed.attempt == 2

        # Billed as a user is: both attempts' prompts, the two tokens once.
        assert await handle.result() == JobResult(
            text="Once upon a time there lived",
            tokens=2,
            usage=Usage(prompt_tokens=8, output_tokens=2),
            finish_reason="length",
        )
        assert stages.attempts() == [("preprocess", 1), ("run_model", 1), ("run_model", 2), ("postprocess", 1)]
        # The retry is the stage's own business: the job's story has one start and one end per stage.
        assert [spec.type for spec in j.events.specs] == [
            "job.started",
            *["stage.started", "stage.completed"] * 3,
            "job.completed",
        ]
        assert (await memo_of(handle))["status"] == "SUCCEEDED"
        assert await status_of(handle) == (WorkflowExecutionStatus.COMPLETED, "SUCCEEDED")
        # A finished job still shows that its model stage needed a second attempt.
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.SUCCEEDED, 2, 2),
            ("postprocess", "postprocess", StageState.SUCCEEDED, 1, 0),
        ]


class InvalidInput(Stages):
    async def do_run_model(self, stage: StageInput) -> StageOutput:
        raise ApplicationError("prompt has no tokens the model knows", type="InvalidInput", non_retryable=True)


async def test_non_retryable_failure_fails_the_job(client: Client) -> None:
    async with job(client, InvalidInput()) as j:
        handle = await j.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.message, cause.non_retryable) == (
            "InvalidInput",
            "prompt has no tokens the model knows",
            True,
        )

        assert j.stages.attempts() == [("preprocess", 1), ("run_model", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            completed("preprocess", 0),
            started("generate", 1),
            ("job.failed", cursors.terminal(), "generate", 0, 0),
        ]
        failed = j.events.specs[-1]
        assert isinstance(failed, JobFailedSpec)
        assert (failed.error_code, failed.error_message) == ("InvalidInput", "prompt has no tokens the model knows")

        memo = await memo_of(handle)
        keys = ("status", "stage", "stages_completed", "error_code", "error_message")
        assert {key: memo.get(key) for key in keys} == {
            "status": "FAILED",
            "stage": "generate",
            "stages_completed": 1,
            "error_code": "InvalidInput",
            "error_message": "prompt has no tokens the model knows",
        }
        assert await status_of(handle) == (WorkflowExecutionStatus.FAILED, "FAILED")
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.FAILED, 1, 0),
            ("postprocess", "postprocess", StageState.PENDING, 0, 0),
        ]


class BlankInput(Stages):
    async def do_preprocess(self, stage: StageInput) -> StageOutput:
        raise ApplicationError("input is empty after normalisation", type="InvalidInput", non_retryable=True)


async def test_a_local_stage_that_fails_fails_the_job_and_its_story_has_a_start(client: Client) -> None:
    """A local stage's failure reaches the workflow as the activity raised it (no ActivityError around it);
    the job fails with its code, and the events the stage had sent go out again with job.failed, so the memo
    names where the story starts (same ids: readers keep one copy)."""
    async with job(client, BlankInput()) as j:
        handle = await j.start()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, cause.message) == ("InvalidInput", "input is empty after normalisation")
        assert j.stages.attempts() == [("preprocess", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            JOB_STARTED,
            started("preprocess", 0),
            ("job.failed", cursors.terminal(), "preprocess", 0, 0),
        ]
        memo = await memo_of(handle)
        assert (memo["status"], memo["error_code"], memo["stage"]) == ("FAILED", "InvalidInput", "preprocess")
        # The second job.started's offset: the mocked log hands out offsets in publishing order.
        assert (memo["log_partition"], memo["log_offset"]) == (PARTITION, FIRST_OFFSET + 2)
        assert await status_of(handle) == (WorkflowExecutionStatus.FAILED, "FAILED")


async def assert_cancelled(handle: WorkflowHandle[Any, JobResult]) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert await status_of(handle) == (WorkflowExecutionStatus.CANCELED, "CANCELLED")


async def test_cancel_before_a_stage_starts(client: Client) -> None:
    # No stage worker: preprocess is scheduled and waits on its queue (schedule-to-start is a minute).
    async with job(client, Stages(), adjust=remote, serve_stages=False) as j:
        handle = await j.start()
        await j.events.wait_for("stage.started", "preprocess")
        await handle.cancel()
        await assert_cancelled(handle)

        assert j.stages.calls == []
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            ("job.cancelled", cursors.terminal(), "preprocess", 0, 0),
        ]
        ended = j.events.specs[-1]
        assert isinstance(ended, JobCancelledSpec)
        assert ended.tokens == 0
        memo = await memo_of(handle)
        assert (memo["status"], memo["stage"], memo.get("stages_completed")) == ("CANCELLED", "preprocess", None)


async def test_cancel_before_the_workflow_first_runs(client: Client) -> None:
    # Cancelled before any worker polls: the first workflow task carries the start and the cancel together.
    async with job(client, Stages(), serve_workflow=False) as j:
        handle = await j.start()
        await handle.cancel()
        async with workflow_worker(client, j.input.job_id, j.events):
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        assert j.stages.calls == []
        assert [spec.type for spec in j.events.specs][-1:] == ["job.cancelled"]
        assert (await memo_of(handle))["status"] == "CANCELLED"
        assert await status_of(handle) == (WorkflowExecutionStatus.CANCELED, "CANCELLED")


class SlowModel(Stages):
    def __init__(self) -> None:
        super().__init__()
        self.generating = asyncio.Event()
        self.stopped = asyncio.Event()

    async def do_run_model(self, stage: StageInput) -> StageOutput:
        self.generating.set()
        try:
            while True:
                activity.heartbeat({"tokens": 1})
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.stopped.set()
            raise


async def test_cancel_during_a_stage(client: Client) -> None:
    stages = SlowModel()
    async with job(client, stages) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.generating.wait(), WAIT_S)
        # As CancelJob does it: the reason first, then the cancel.
        await handle.signal(CANCEL_REASON_SIGNAL, "the user closed the tab")
        await handle.cancel()
        await assert_cancelled(handle)
        ended = j.events.specs[-1]
        assert isinstance(ended, JobCancelledSpec)
        assert ended.reason == "the user closed the tab"
        assert (await memo_of(handle))["cancel_reason"] == "the user closed the tab"
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.CANCELLED, 1, 0),
            ("postprocess", "postprocess", StageState.PENDING, 0, 0),
        ]

        # The workflow waited for the activity to confirm it stopped before it ended.
        assert stages.stopped.is_set()
        assert stages.attempts() == [("preprocess", 1), ("run_model", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            completed("preprocess", 0),
            started("generate", 1),
            ("job.cancelled", cursors.terminal(), "generate", 0, 0),
        ]
        memo = await memo_of(handle)
        assert (memo["status"], memo["stage"], memo["stages_completed"]) == ("CANCELLED", "generate", 1)

        history = await handle.fetch_history()
        kinds = [event.event_type for event in history.events]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in kinds


class CancelMissed(Stages):
    """preprocess never heartbeats, so the cancel never reaches it, and it completes normally."""

    def __init__(self) -> None:
        super().__init__()
        self.running = asyncio.Event()
        self.release = asyncio.Event()

    async def do_preprocess(self, stage: StageInput) -> StageOutput:
        self.running.set()
        await self.release.wait()
        return await super().do_preprocess(stage)


async def cancel_requested_of_activity(handle: WorkflowHandle[Any, Any]) -> None:
    while True:
        events = [event.event_type for event in (await handle.fetch_history()).events]
        if EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in events:
            return
        await asyncio.sleep(0.02)


async def test_cancel_that_a_stage_misses_still_cancels_the_job(client: Client) -> None:
    stages = CancelMissed()
    async with job(client, stages, adjust=remote) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.running.wait(), WAIT_S)
        await handle.cancel()
        # The workflow is waiting for preprocess to confirm the cancellation; it completes instead. (Released
        # only once the workflow has asked: released sooner, its completion can reach the workflow with the
        # cancel, in one task, and the job never learns that the stage finished.)
        await asyncio.wait_for(cancel_requested_of_activity(handle), WAIT_S)
        stages.release.set()
        await assert_cancelled(handle)

        assert stages.attempts() == [("preprocess", 1)]
        assert j.events.story() == [
            JOB_STARTED,
            started("preprocess", 0),
            completed("preprocess", 0),
            ("job.cancelled", cursors.terminal(), "preprocess", 0, 0),
        ]
        assert (await memo_of(handle))["status"] == "CANCELLED"


async def test_cancel_during_a_local_stage_cancels_the_job(client: Client) -> None:
    """A local stage runs inside a workflow task, so a cancel reaches the job with the next task: after the
    stage and the scheduling of the remote stage it announced (which is then cancelled)."""
    stages = CancelMissed()
    async with job(client, stages) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.running.wait(), WAIT_S)
        await handle.cancel()
        stages.release.set()
        await assert_cancelled(handle)

        story = j.events.story()
        assert story[:4] == [JOB_STARTED, started("preprocess", 0), completed("preprocess", 0), started("generate", 1)]
        assert story[-1][:2] == ("job.cancelled", cursors.terminal())
        assert [name for name, _ in stages.attempts()][:1] == ["preprocess"]
        memo = await memo_of(handle)
        assert memo["status"] == "CANCELLED"
        assert (await records_of(handle))[0][2] == StageState.SUCCEEDED
        assert await status_of(handle) == (WorkflowExecutionStatus.CANCELED, "CANCELLED")


class ClaimChecked(Stages):
    """postprocess as the real one decides: a result over the threshold goes to the store, by reference."""

    threshold_bytes = 16

    async def do_postprocess(self, stage: StageInput) -> StageOutput:
        text = stage.text or ""
        assert len(text.encode()) > self.threshold_bytes
        return StageOutput(ref=RESULT_REF, attempt=activity.info().attempt)


RESULT_REF = f"{REF_SCHEME}jobstream/results/sha256/{'ab' * 32}"


async def test_result_over_threshold_travels_by_reference(client: Client) -> None:
    async with job(client, ClaimChecked()) as j:
        handle = await j.start()
        result = await handle.result()
        assert (result.text, result.ref, result.tokens) == (None, RESULT_REF, 2)
        done = j.events.specs[-1]
        assert isinstance(done, JobCompletedSpec)
        assert (done.type, done.result_text, done.result_ref, done.tokens) == ("job.completed", None, RESULT_REF, 2)
        assert (await memo_of(handle))["status"] == "SUCCEEDED"


class StopsWhenCancelled(Stages):
    """run_model as the real one: on the job's cancellation it stops and reports what it delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.generating = asyncio.Event()

    async def do_run_model(self, stage: StageInput) -> StageOutput:
        self.generating.set()
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            return StageOutput(
                text=" there", tokens=3, attempt=activity.info().attempt, prompt_tokens=4, finish_reason="cancelled"
            )


async def test_a_cancelled_model_stage_reports_what_it_delivered(client: Client) -> None:
    stages = StopsWhenCancelled()
    async with job(client, stages) as j:
        handle = await j.start()
        await asyncio.wait_for(stages.generating.wait(), WAIT_S)
        await handle.cancel()
        await assert_cancelled(handle)
        cancelled = j.events.specs[-1]
        assert isinstance(cancelled, JobCancelledSpec)
        assert (cancelled.type, cancelled.tokens, cancelled.finish_reason) == ("job.cancelled", 3, "cancelled")
        assert cancelled.usage == Usage(prompt_tokens=4, output_tokens=3)
        # The cut-short stage is cancelled, not completed: no stage.completed, its record says so.
        assert [spec.type for spec in j.events.specs].count("stage.completed") == 1
        memo = JobMemo.parse(await memo_of(handle))
        assert (memo.status, memo.tokens_generated, memo.finish_reason()) == ("CANCELLED", 3, "cancelled")
        assert memo.usage() == Usage(prompt_tokens=4, output_tokens=3)
        assert await records_of(handle) == [
            ("preprocess", "preprocess", StageState.SUCCEEDED, 1, 0),
            ("generate", "model", StageState.CANCELLED, 1, 3),
            ("postprocess", "postprocess", StageState.PENDING, 0, 0),
        ]
