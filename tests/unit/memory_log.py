"""A log reader in memory for the event hub's tests: records appended to a followed partition reach the hub at
once, and a replay is scripted (what it yields, what the tail routes while it runs, whether it expired)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import cast

from aiokafka import ConsumerRecord

from jobstream.log_reader import LogExpired, LogRecord, Sink


class MemoryLog:
    def __init__(self, boundary: int, partition_count: int = 8) -> None:
        self.partition_count = partition_count
        self.boundary = boundary  # what routed_from answers
        self.follows: Counter[int] = Counter()
        self.replayed: list[LogRecord] = []
        self.during_replay: list[LogRecord] = []
        self.replay_expired = False
        self.replay_calls: list[tuple[str, int, int, int]] = []
        self._sink: Sink | None = None

    async def start(self, sink: Sink) -> None:
        self._sink = sink

    async def stop(self) -> None:
        self._sink = None

    def follow(self, partition: int) -> None:
        self.follows[partition] += 1

    def unfollow(self, partition: int) -> None:
        self.follows[partition] -= 1
        if not self.follows[partition]:
            del self.follows[partition]

    async def routed_from(self, partition: int) -> int:
        assert self.follows[partition], "asked where a partition nobody follows is routed from"
        return self.boundary

    def append(self, record: LogRecord) -> None:
        """The tail reads `record`: routed to the hub if its partition is followed."""
        assert self._sink is not None
        if self.follows[record.partition]:
            self._sink(record)

    async def replay(
        self, job_id: str, partition: int, offset: int, boundary: int, owner: str
    ) -> AsyncIterator[LogRecord]:
        self.replay_calls.append((job_id, partition, offset, boundary))
        for record in self.during_replay:
            self.append(record)
        if self.replay_expired:
            raise LogExpired(job_id)
        for record in self.replayed:
            if record.key == job_id.encode():
                yield record

    def lag(self) -> dict[int, int]:
        return {}


def kafka_record(partition: int, offset: int, key: bytes | None, value: bytes | None) -> LogRecord:
    made = ConsumerRecord(
        "jobstream.event_log", partition, offset, 0, 0, key, value, None, len(key or b""), len(value or b""), []
    )
    return cast(LogRecord, made)
