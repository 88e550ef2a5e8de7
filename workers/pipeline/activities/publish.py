"""Publishing the workflow's own events (job and stage transitions) to the job's event log, and running a
local CPU stage together with the events around it."""

from __future__ import annotations

import asyncio

from temporalio import activity

from jobstream.event_log import EventLog, LogLocator
from jobstream.job_events import build_event
from jobstream.payload_store import PayloadStore
from jobstream.workflow_io import (
    EventSpec,
    JobCompletedSpec,
    LocalStage,
    LocalStageResult,
    StageCompletedSpec,
    StageInput,
    StageOutput,
)
from workers.pipeline.activities.text import TextActivities


class EventActivities:
    def __init__(self, event_log: EventLog, store: PayloadStore, text: TextActivities) -> None:
        self.event_log = event_log
        self.store = store
        self.text = text

    @activity.defn(name="publish_event")
    async def publish_event(self, spec: EventSpec) -> LogLocator:
        """Publish and say where: readers start a job's replay at its first event. (Kept for the histories
        of jobs started before `publish_events`.)"""
        return await self.event_log.publish(await build_event(spec, self.store))

    @activity.defn(name="publish_events")
    async def publish_events(self, specs: list[EventSpec]) -> list[LogLocator]:
        """Publish several events in order, in one round trip to Kafka, and say where each landed."""
        return await self.event_log.publish_all([await build_event(spec, self.store) for spec in specs])

    @activity.defn(name="run_local_stage")
    async def run_local_stage(self, local: LocalStage) -> LocalStageResult:
        """A CPU stage as a local activity: its events before, the stage, its events after.

        The events before are sent, not waited for, while the stage runs: the producer keeps them in order
        ahead of the events after, so one wait for every ack ends the activity (one Kafka round trip)."""
        sends = [await self.event_log.send(await build_event(spec, self.store)) for spec in local.publish_before]
        try:
            output = await self._run(local.stage)
            for spec in local.publish_after:
                sends.append(await self.event_log.send(await build_event(after_stage(spec, output), self.store)))
        finally:
            # Whatever happens to the stage, what was sent is acknowledged (or fails the attempt) first.
            acks = await asyncio.gather(*sends)
        before = acks[: len(local.publish_before)]
        return LocalStageResult(output=output, published_before=[LogLocator(m.partition, m.offset) for m in before])

    async def _run(self, stage: StageInput) -> StageOutput:
        if stage.stage.kind == "preprocess":
            return await self.text.preprocess(stage)
        if stage.stage.kind == "postprocess":
            return await self.text.postprocess(stage)
        raise ValueError(f"a {stage.stage.kind} stage cannot run locally")


def after_stage(spec: EventSpec, output: StageOutput) -> EventSpec:
    """An event published after a local stage, with what only the stage knows: the attempt that succeeded
    (stage.completed) or the job's result (job.completed)."""
    if isinstance(spec, StageCompletedSpec):
        return spec.model_copy(update={"attempt": output.attempt})
    if isinstance(spec, JobCompletedSpec):
        return spec.model_copy(update={"result_text": output.text, "result_ref": output.ref})
    return spec
