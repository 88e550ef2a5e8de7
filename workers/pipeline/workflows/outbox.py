"""The job's events waiting for the workflow's next durable trip. Deterministic (no Temporal call), so it is
unit-tested without Temporal; the workflow decides when a trip happens, the outbox what goes with it.

A remote stage is preceded by one publish of all that is pending; a local stage carries the pending events
before it and its own after it (its activity publishes them); the job's end goes with whatever is still
pending. Replay seeks to where job.started landed: until the workflow knows that, the events a local stage
sent are unconfirmed (the stage may fail after sending them) and go out again with the job's end (same ids:
readers keep one copy), so that a replay always has a start to seek to."""

from __future__ import annotations

from collections.abc import Sequence

from jobstream.event_log import LogLocator
from jobstream.workflow_io import EventSpec, JobStartedSpec, StageStartedSpec


class Outbox:
    def __init__(self, started: JobStartedSpec) -> None:
        self.pending: list[EventSpec] = [started]
        self.unconfirmed: list[EventSpec] = []
        self.start_recorded = False
        self.ended = False  # job.completed went out with the last local stage (jobs before the verdict patch)
        self._announced: set[int] = set()  # stages whose stage.started went out ahead of them

    def add(self, spec: EventSpec) -> None:
        self.pending.append(spec)

    def stage_starts(self, index: int, started: StageStartedSpec) -> None:
        """The stage's stage.started, unless it went out ahead of it (announce)."""
        if index not in self._announced:
            self.pending.append(started)

    def announce(self, index: int, started: StageStartedSpec) -> StageStartedSpec:
        """Stage `index`'s stage.started goes out with the trip before it: not again when it starts."""
        self._announced.add(index)
        return started

    def take(self) -> list[EventSpec]:
        """Everything pending, for the trip being made now."""
        taken, self.pending = self.pending, []
        return taken

    def take_for_local_stage(self) -> list[EventSpec]:
        """Everything pending, to go out with a local stage: unconfirmed until it succeeds."""
        before = self.take()
        if not self.start_recorded:
            self.unconfirmed = before
        return before

    def published(self, events: Sequence[EventSpec], locators: Sequence[LogLocator]) -> LogLocator | None:
        """`events` landed at `locators`: where job.started did, if it was among them (None otherwise)."""
        self.unconfirmed = []
        for spec, locator in zip(events, locators, strict=False):
            if isinstance(spec, JobStartedSpec):
                self.start_recorded = True
                return locator
        return None

    def ending_with(self, terminal: EventSpec) -> list[EventSpec]:
        """What goes out with the job's end: the unconfirmed, the pending, and the terminal event last."""
        return [*self.unconfirmed, *self.take(), terminal]
