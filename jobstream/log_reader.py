"""What the event hub reads the event log through: a tail that hands over every record of the partitions it
follows, as it reads them, and replays of one job's records from where its story starts.

Kafka's is jobstream/kafka_reader.py; the hub's unit tests use one in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol


class LogRecord(Protocol):
    """One record of the log (aiokafka's ConsumerRecord is one): a job's event, keyed by its job id."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


Sink = Callable[[LogRecord], None]


class LogExpired(Exception):
    """The job's story starts before what the log still retains."""


class LogReader(Protocol):
    @property
    def partition_count(self) -> int: ...

    async def start(self, sink: Sink) -> None:
        """Start tailing: from now on every record of a followed partition is handed to `sink` as it is read."""

    async def stop(self) -> None: ...

    def follow(self, partition: int) -> None:
        """Tail `partition` (if it is not tailed already) until as many `unfollow` calls have come."""

    def unfollow(self, partition: int) -> None: ...

    async def routed_from(self, partition: int) -> int:
        """The offset from which on every record of the followed `partition` reaches the sink (at once, with no
        await, for a partition the tail already reads)."""

    def replay(self, job_id: str, partition: int, offset: int, boundary: int, owner: str) -> AsyncIterator[LogRecord]:
        """The job's records in `partition` from `offset` up to `boundary` (excluded), in log order; raises
        LogExpired when `offset` is no longer retained. `owner` (the job's tenant) shares replay capacity fairly."""

    def lag(self) -> dict[int, int]:
        """Per followed partition, the records the tail has yet to read."""
