"""A partition's recent records: what a replay from memory may rely on."""

from __future__ import annotations

from jobstream.recent_records import RecentRecords
from tests.unit.memory_log import kafka_record

A, B = b"job_a", b"job_b"


def test_between_returns_one_jobs_records_in_the_range() -> None:
    recent = RecentRecords(capacity=100, first_offset=10)
    recent.extend([kafka_record(0, offset, A if offset % 2 else B, b"v") for offset in range(10, 30)])
    assert [record.offset for record in recent.between(13, 20, A)] == [13, 15, 17, 19]
    assert recent.between(40, 50, A) == []


def test_it_covers_from_where_the_tail_started_reading_even_before_reading_it() -> None:
    recent = RecentRecords(capacity=100, first_offset=10)
    assert recent.covers(10)
    assert recent.covers(500)
    assert not recent.covers(9)


def test_trimmed_records_are_no_longer_covered() -> None:
    recent = RecentRecords(capacity=10, first_offset=0)
    recent.extend([kafka_record(0, offset, A, b"v") for offset in range(25)])
    assert 10 <= len(recent) < 20
    assert not recent.covers(0)
    assert recent.covers(recent.first_offset)
    assert recent.between(0, 25, A)[0].offset == recent.first_offset


def test_capacity_zero_keeps_nothing_and_covers_nothing() -> None:
    recent = RecentRecords(capacity=0, first_offset=0)
    recent.extend([kafka_record(0, 0, A, b"v")])
    assert len(recent) == 0
    assert not recent.covers(0)
