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
from workers.pipeline.workflows.legacy_pipeline_workflow import LegacyPipelineWorkflow
from workers.pipeline.workflows.pipeline_workflow import PipelineWorkflow
from workers.worker_process import workflow_runner

HISTORIES = Path(__file__).resolve().parent / "histories"
# Every committed history: one per pipeline of the legacy type (PipelineWorkflow) and of V2.
RECORDED = sorted(path.stem for path in HISTORIES.glob("*.json"))


def test_histories_of_both_workflow_types() -> None:
    assert {"generate", "generate-keywords", "generate-v2", "generate-keywords-v2"} <= set(RECORDED)


@pytest.mark.parametrize("pipeline", RECORDED)
async def test_committed_history_replays(pipeline: str) -> None:
    data = json.loads((HISTORIES / f"{pipeline}.json").read_text())
    workflow_id = data["events"][0]["workflowExecutionStartedEventAttributes"]["workflowId"]
    history = WorkflowHistory.from_json(workflow_id, data)
    assert len(history.events) > 15, "a whole job's history: started, every stage, completed"
    # Nothing in it needs the external store: the converter is the project's own, MinIO is never asked.
    # Each history replays on the class of its workflow type: the legacy one for jobs started before V2.
    workflows = [PipelineWorkflow, LegacyPipelineWorkflow]
    replayer = Replayer(
        workflows=workflows, data_converter=data_converter(Settings(minio_port=1)), workflow_runner=workflow_runner()
    )
    result = await replayer.replay_workflow(history)  # raises on nondeterminism
    assert result.replay_failure is None
