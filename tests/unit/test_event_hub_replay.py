"""The event hub's replay joined with the live tail, over a log reader in memory: no gap and no duplicate, a
resume after a cursor, re-sent and stale events dropped, other jobs' and malformed records skipped, a terminal
event ending the watch, and a gap in the token indexes waited out until the retry fills it.

The scripted hub and the job's story are tests/unit/event_hub_kit.py.
"""

from __future__ import annotations

from pathlib import Path

from jobstream import cursors
from jobstream.log_reader import LogRecord
from jobstream.v1.event_pb2 import JobEvent
from tests.unit.event_hub_kit import BOUNDARY, JOB, OTHER, PARTITION, START_OFFSET, Fake, collect, ids, record, story
from tests.unit.memory_log import kafka_record


async def test_replay_and_tail_overlap_without_duplicates(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story()
    fake.replayed = events[:6]
    fake.during_replay = [record(event, offset=BOUNDARY + i) for i, event in enumerate(events[3:])]
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)
    assert seen[-1].job_completed.result_text == " t0 t1 t2 t3 t4 t5"
    assert fake.replay_calls == [(JOB, PARTITION, START_OFFSET, BOUNDARY)]
    assert fake.stream.watched_jobs == 0  # the watcher left
    assert fake.log.follows == {}  # ...and its job's partition


async def test_tail_events_after_the_replay_are_delivered(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story()
    fake.replayed = events[:2]
    # Routed after the watcher got its first event: it is already subscribed, so nothing is lost.
    seen = await collect(fake.stream, then=lambda: fake.route(events[2:]))
    assert ids(seen) == ids(events)


async def test_resume_after_a_cursor(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story()
    fake.replayed = events[:5]
    fake.during_replay = [record(event) for event in events[5:]]
    seen = await collect(fake.stream, after=cursors.token(0, 1))
    assert ids(seen) == ids(events[4:])
    assert seen[0].token.index == 2


async def test_resent_and_stale_events_are_dropped(tmp_path: Path) -> None:
    """A retried activity re-sends tokens its predecessor already published: readers see each index once."""
    fake = Fake(tmp_path)
    events = story(tokens=4)
    fake.replayed = events[:4]  # job.started, stage.started, tokens 0-1
    resent = [events[2], events[3], events[4], events[3], events[2], events[4], events[5], events[5]]
    fake.during_replay = [record(event) for event in [*resent, *events[6:]]]
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)
    assert [event.token.index for event in seen if event.type == "token"] == [0, 1, 2, 3]


async def test_other_jobs_and_empty_records_are_ignored(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story()
    fake.replayed = events[:1]
    other = story(OTHER)
    fake.during_replay = [
        record(None),
        record(other[1]),
        record(other[-1]),  # another job's terminal must not end this watch
        *(record(event) for event in events[1:]),
    ]
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)
    assert {event.job_id for event in seen} == {JOB}


def raw(value: bytes, key: str = JOB) -> LogRecord:
    return kafka_record(PARTITION, 0, key.encode(), value)


async def test_malformed_records_are_skipped_not_fatal(tmp_path: Path) -> None:
    # Whoever can write to the topic must not be able to stop every live stream (the tail routes them all).
    fake = Fake(tmp_path)
    events = story()
    fake.replayed = events[:1]
    fake.during_replay = [
        raw(b"\xff\xfe not a protobuf"),
        raw(JobEvent(id="not-a-cursor", job_id=JOB, type="token").SerializeToString()),
        raw(JobEvent(job_id=JOB).SerializeToString()),
        *(record(event) for event in events[1:]),
    ]
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)


async def test_terminal_in_the_replay_ends_the_watch(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story()
    fake.replayed = [*events, *story(tokens=1)[:2]]  # anything after the terminal is never read
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)


async def test_a_gap_in_the_log_waits_for_the_retry_that_fills_it(tmp_path: Path) -> None:
    """A broker restart can lose a batch of tokens while a later batch lands; the retry re-publishes from the
    first missing index. The watcher must deliver the late tokens, not drop them as already seen."""
    fake = Fake(tmp_path)
    events = story(tokens=6)  # job.started, stage.started, tokens 0-5 (events[2:8]), completed, terminal
    fake.replayed = events[:4]  # ... tokens 0-1
    gap_then_retry = [events[6], events[7], events[4], events[5], events[6], events[7], *events[8:]]
    fake.during_replay = [record(event) for event in gap_then_retry]  # tokens 4-5 first, then 2-5 again
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)


async def test_tokens_stranded_behind_a_gap_are_dropped_when_the_job_ends(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story(tokens=6)
    failed = JobEvent(id=cursors.terminal(), job_id=JOB, type="job.failed")
    fake.replayed = [*events[:4], events[6], failed]  # token 4 after a gap that was never filled
    seen = await collect(fake.stream)
    assert ids(seen) == [*ids(events[:4]), cursors.terminal()]


async def test_a_resumed_watcher_still_waits_for_the_next_index(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story(tokens=6)
    fake.replayed = [*events[:5], events[6], events[5], *events[6:]]
    seen = await collect(fake.stream, after=cursors.token(0, 1))
    assert ids(seen) == ids(events[4:])
