"""The last records the tail read from one partition, kept so that replays of recent stories are served from
memory: after a bridge replica dies its clients reconnect to another at once, and one Kafka read of the
partition (the tail's) then serves all of them instead of one replay consumer each."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from jobstream.log_reader import LogRecord


class RecentRecords:
    def __init__(self, capacity: int, first_offset: int) -> None:
        self.capacity = capacity
        # Every record the tail reads from here on is kept (until trimmed): where the tail started reading.
        self.first_offset = first_offset
        self._records: list[LogRecord] = []

    def __len__(self) -> int:
        return len(self._records)

    def extend(self, records: Iterable[LogRecord]) -> None:
        if not self.capacity:
            return
        self._records.extend(records)
        # Trimmed in steps of `capacity`, not one record at a time: a list slice is cheap, a per-record pop not.
        if len(self._records) >= 2 * self.capacity:
            del self._records[: len(self._records) - self.capacity]
            self.first_offset = self._records[0].offset

    def covers(self, offset: int) -> bool:
        """Whether every record from `offset` on that the tail reads is (or, once read, will be) here."""
        return self.capacity > 0 and self.first_offset <= offset

    def between(self, start: int, end: int, key: bytes) -> list[LogRecord]:
        """The records of `key` with offsets in [start, end), in order."""
        lo = bisect.bisect_left(self._records, start, key=lambda record: record.offset)
        hi = bisect.bisect_left(self._records, end, lo=lo, key=lambda record: record.offset)
        return [record for record in self._records[lo:hi] if record.key == key]
