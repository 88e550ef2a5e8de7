"""Publishing the workflow's own events (job and stage transitions) to the job's event log."""

from __future__ import annotations

from temporalio import activity

from jobstream.event_log import EventLog, LogLocator
from jobstream.job_events import build_event
from jobstream.payload_store import PayloadStore
from jobstream.workflow_io import EventSpec


class EventActivities:
    def __init__(self, log: EventLog, store: PayloadStore) -> None:
        self.log = log
        self.store = store

    @activity.defn(name="publish_event")
    async def publish_event(self, spec: EventSpec) -> LogLocator:
        """Publish and say where: readers start a job's replay at its first event."""
        return await self.log.publish(await build_event(spec, self.store))
