"""PipelineWorkflow's success path against a real Temporal dev server with every activity mocked: the events a
job of the `generate` pipeline publishes, what each stage gets, what the memo and search attributes end with,
and the workflow tasks it costs before the model starts.

The dev server is the `client` fixture (tests/unit/conftest.py); the job harness and the mocked activities are
tests/unit/pipeline_workflow_kit.py and tests/unit/pipeline_workflow_fakes.py.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from jobstream import cursors
from jobstream.job_state import StageState
from jobstream.workflow_io import GenerationParams, JobCompletedSpec, JobResult, JobStartedSpec, Usage
from tests.unit.pipeline_workflow_fakes import FIRST_OFFSET, PARTITION, Stages
from tests.unit.pipeline_workflow_kit import (
    JOB_STARTED,
    PROMPT,
    completed,
    job,
    memo_of,
    records_of,
    started,
    status_of,
)


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
