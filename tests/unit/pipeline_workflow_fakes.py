"""The mocked activities PipelineWorkflow's unit tests run it with: no Kafka, MinIO or Triton.

`Events` stands in for the `publish_event`/`publish_events` local activities (it records every event the
workflow asks to publish) and for `run_local_stage` (a local CPU stage runs through the same `Stages` hooks).
`Stages` stands in for the `preprocess`/`run_model`/`postprocess` activities; a test subclasses it and
overrides a `do_*` hook to script a stage's behaviour.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from jobstream.event_log import LogLocator
from jobstream.workflow_io import EventSpec, LocalStage, LocalStageResult, StageInput, StageOutput
from workers.pipeline.activities.publish import after_stage

# Where the mocked log says the events land: one partition, offsets handed out in publishing order.
PARTITION = 3
FIRST_OFFSET = 100
WAIT_S = 10.0


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
