"""PipelineWorkflow still replays the committed histories of real jobs — no servers needed.

Each history in tests/unit/histories/ is a job of one pipeline recorded from a real stack
(`scripts/record-histories`). Its payloads are all under the claim-check threshold, so the project's
data converter decodes them without MinIO. A workflow change that would break jobs already running
(a command added, removed or reordered) fails here with Temporal's nondeterminism error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from jobstream.payload_store import data_converter
from jobstream.settings import Settings
from workers.pipeline.workflows.pipeline_workflow import PipelineWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
# Every committed history: one per pipeline from before each workflow patch, and from after it.
RECORDED = sorted(path.stem for path in HISTORIES.glob("*.json"))


def test_histories_from_before_and_after_the_batched_trips_patch() -> None:
    assert {"generate", "generate-keywords", "generate-batched-trips", "generate-keywords-batched-trips"} <= set(
        RECORDED
    )


@pytest.mark.parametrize("pipeline", RECORDED)
async def test_committed_history_replays(pipeline: str) -> None:
    data = json.loads((HISTORIES / f"{pipeline}.json").read_text())
    workflow_id = data["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"]
    history = WorkflowHistory.from_json(workflow_id, data)
    assert len(history.events) > 15, "a whole job's history: started, every stage, completed"
    # Nothing in it needs the external store: the converter is the project's own, MinIO is never asked.
    replayer = Replayer(workflows=[PipelineWorkflow], data_converter=data_converter(Settings(minio_port=1)))
    result = await replayer.replay_workflow(history)  # raises on nondeterminism
    assert result.replay_failure is None
