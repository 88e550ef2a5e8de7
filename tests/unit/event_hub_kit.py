"""A scripted event hub for the event hub's tests: `Fake` builds an EventHub over a log reader in memory
(tests/unit/memory_log.py) and a job directory whose answers a test sets; `story()` and `record()` make a job's
events and the log records that carry them; `collect()` runs a watch to its end, failing rather than hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from jobstream import cursors
from jobstream.event_hub import EventHub, NotStartedYet
from jobstream.event_log import LogLocator
from jobstream.log_reader import LogRecord
from jobstream.partitioning import partition_of
from jobstream.v1.event_pb2 import JobCompleted, JobEvent, JobStarted, StageEvent, TokenEvent
from tests.unit.memory_log import MemoryLog, kafka_record

JOB = "job_" + "a" * 26
OTHER = "job_" + "b" * 26
PARTITION = partition_of(JOB, 8)
START_OFFSET = 100
BOUNDARY = 150


def story(job_id: str = JOB, tokens: int = 6) -> list[JobEvent]:
    events = [JobEvent(id=cursors.job_started(), job_id=job_id, type="job.started", job_started=JobStarted())]
    events.append(JobEvent(id=cursors.stage_started(0), job_id=job_id, type="stage.started", stage=StageEvent()))
    events += [
        JobEvent(id=cursors.token(0, i), job_id=job_id, type="token", token=TokenEvent(index=i, text=f" t{i}"))
        for i in range(tokens)
    ]
    events.append(JobEvent(id=cursors.stage_completed(0), job_id=job_id, type="stage.completed", stage=StageEvent()))
    events.append(
        JobEvent(
            id=cursors.terminal(),
            job_id=job_id,
            type="job.completed",
            job_completed=JobCompleted(result_text="".join(f" t{i}" for i in range(tokens))),
        )
    )
    return events


def record(event: JobEvent | None, key: str | None = None, offset: int = 0) -> LogRecord:
    value = event.SerializeToString() if event is not None else None
    return kafka_record(PARTITION, offset, (key or (event.job_id if event else JOB)).encode(), value)


class Fake:
    """A hub whose log (in memory) and job directory are scripted."""

    def __init__(self, tmp_path: Path, queue_size: int = 1024) -> None:
        self.location: LogLocator | None = LogLocator(PARTITION, START_OFFSET)
        self.not_started_for = 0
        self.fallback_event: JobEvent | None = None
        self.log = MemoryLog(BOUNDARY)
        self.stream = EventHub(self.log, self.locate, self.fallback, queue_size=queue_size)

    @property
    def replayed(self) -> list[JobEvent]:
        """What the log holds of the job before the boundary: the replay's records."""
        return [JobEvent.FromString(replayed.value or b"") for replayed in self.log.replayed]

    @replayed.setter
    def replayed(self, events: list[JobEvent]) -> None:
        self.log.replayed = [record(event, offset=START_OFFSET + i) for i, event in enumerate(events)]

    @property
    def during_replay(self) -> list[LogRecord]:
        """Tail records the log routes while the replay runs (the race the design must survive)."""
        return self.log.during_replay

    @during_replay.setter
    def during_replay(self, records: list[LogRecord]) -> None:
        self.log.during_replay = records

    @property
    def replay_calls(self) -> list[tuple[str, int, int, int]]:
        return self.log.replay_calls

    async def locate(self, job_id: str) -> LogLocator | None:
        if self.not_started_for > 0:
            self.not_started_for -= 1
            raise NotStartedYet(job_id)
        return self.location

    async def fallback(self, job_id: str) -> JobEvent | None:
        return self.fallback_event

    def route(self, events: Sequence[JobEvent]) -> None:
        for offset, event in enumerate(events, start=BOUNDARY):
            self.log.append(record(event, offset=offset))


async def collect(stream: EventHub, after: str = "", then: Callable[[], None] | None = None) -> list[JobEvent]:
    """Everything watch() yields, failing (not hanging) if it does not finish."""

    await stream.start()

    async def run() -> list[JobEvent]:
        seen = []
        async for event in stream.watch(JOB, after):
            seen.append(event)
            if then is not None and len(seen) == 1:
                then()
        return seen

    return await asyncio.wait_for(run(), timeout=5.0)


def ids(events: Sequence[JobEvent]) -> list[str]:
    return [event.id for event in events]
