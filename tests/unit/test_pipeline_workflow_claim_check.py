"""PipelineWorkflow's claim check against a real Temporal dev server with every activity mocked: a result over
the threshold travels by reference, in the workflow's result and in job.completed, never as text.

The dev server is the `client` fixture (tests/unit/conftest.py); the job harness and the mocked activities are
tests/unit/pipeline_workflow_kit.py and tests/unit/pipeline_workflow_fakes.py.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from jobstream.payload_store import REF_SCHEME
from jobstream.workflow_io import JobCompletedSpec, StageInput, StageOutput
from tests.unit.pipeline_workflow_fakes import Stages
from tests.unit.pipeline_workflow_kit import job, memo_of


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
