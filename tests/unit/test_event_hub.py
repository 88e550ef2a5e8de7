"""The event hub through its public interface, over a log reader in memory: the replay joins the live tail
with no gap and no duplicate, each watcher gets its job's events once and in order, and a watcher follows its
job's partition only while it watches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from jobstream import cursors
from jobstream.delivery import Delivery
from jobstream.event_hub import EventHub, NotStartedYet, SlowConsumerError
from jobstream.event_log import LogLocator
from jobstream.log_reader import LogRecord
from jobstream.partitioning import partition_of
from jobstream.v1.event_pb2 import JobCompleted, JobEvent, JobStarted, StageEvent, TokenEvent
from sse_bridge.sse_encoding import frame_of
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


async def test_waits_while_the_job_has_not_started(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    fake.not_started_for = 3
    fake.replayed = story()
    assert ids(await collect(fake.stream)) == ids(story())
    assert fake.not_started_for == 0


async def test_unknown_start_answers_with_the_final_state(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    fake.location = None
    terminal = story()[-1]
    fake.fallback_event = terminal
    assert ids(await collect(fake.stream)) == [cursors.terminal()]
    assert fake.replay_calls == []
    # A client that already saw the terminal event gets nothing twice.
    assert await collect(fake.stream, after=cursors.terminal()) == []


async def test_events_past_retention_answer_with_the_final_state(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    fake.log.replay_expired = True
    fake.fallback_event = story()[-1]
    assert ids(await collect(fake.stream)) == [cursors.terminal()]


async def test_a_slow_watcher_is_told_to_resume(tmp_path: Path) -> None:
    fake = Fake(tmp_path, queue_size=3)
    events = story()
    fake.replayed = events[:1]
    fake.during_replay = [record(event) for event in events[1:]]  # more than the queue holds
    seen: list[JobEvent] = []

    await fake.stream.start()

    async def drain() -> None:
        async for event in fake.stream.watch(JOB):
            seen.append(event)

    with pytest.raises(SlowConsumerError, match=r"resume after 001\.2\.0000001"):
        await asyncio.wait_for(drain(), timeout=5.0)
    # Everything that fit was delivered, in order; the rest waits for the reconnect.
    assert ids(seen) == ids(events[:4])
    assert fake.stream.watched_jobs == 0
    assert fake.log.follows == {}


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


async def batches_of(fake: Fake, then: Callable[[int], None] = lambda n: None) -> list[list[Delivery]]:
    """Everything watch_batches() yields; `then(n)` runs after the n-th batch."""
    seen: list[list[Delivery]] = []
    await fake.stream.start()
    async with asyncio.timeout(5):
        async for batch in fake.stream.watch_batches(JOB):
            seen.append(batch)
            then(len(seen))
    return seen


async def test_a_watcher_takes_everything_pending_in_one_batch(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story(tokens=1)  # job.started, stage.started, token 0, stage.completed, terminal
    fake.replayed = events[:1]
    routed = {1: events[1:4], 2: events[4:]}
    seen = await batches_of(fake, then=lambda n: fake.route(routed.get(n, [])))
    assert [ids([delivery.event for delivery in batch]) for batch in seen] == [
        [cursors.job_started()],
        ids(events[1:4]),
        [cursors.terminal()],
    ]


async def test_every_watcher_of_a_record_shares_its_delivery_and_frame(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story(tokens=1)
    fake.during_replay = [record(event, offset=BOUNDARY + i) for i, event in enumerate(events)]
    first, second = await asyncio.gather(batches_of(fake), batches_of(fake))
    assert [d.event.id for batch in first for d in batch] == ids(events)
    assert all(a is b for a, b in zip(first[0], second[0], strict=True))
    assert frame_of(first[0][0]) is frame_of(second[0][0])  # encoded once, for both


async def test_a_watcher_that_joined_early_takes_the_start_from_the_tail(tmp_path: Path) -> None:
    """Not one DescribeWorkflowExecution per 100 ms while the job waits to start: job.started on the tail
    says where the story starts."""
    fake = Fake(tmp_path)
    fake.not_started_for = 1_000_000  # Temporal never names the start: only the tail can
    events = story()
    asyncio.get_running_loop().call_later(1.0, fake.route, events)
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)
    assert 1_000_000 - fake.not_started_for <= 3  # the first look, and at most the safety net's (was ~10)
    # It was routed after the watcher subscribed: the replay ends before it reads anything.
    assert fake.replay_calls == [(JOB, PARTITION, BOUNDARY, BOUNDARY)]


async def test_a_start_routed_just_before_the_watcher_subscribed_is_located(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    fake.not_started_for = 3  # the workflow records job.started's offset a moment after publishing it
    events = story()
    fake.replayed = events[:1]
    asyncio.get_running_loop().call_later(0.05, fake.route, events[1:])  # the tail missed job.started
    started = time.monotonic()
    seen = await collect(fake.stream)
    assert ids(seen) == ids(events)
    assert fake.not_started_for == 0
    assert fake.replay_calls == [(JOB, PARTITION, START_OFFSET, BOUNDARY)]
    assert time.monotonic() - started < 0.9  # polled at once, not after the safety net's second


async def test_a_job_that_ends_before_publishing_anything_answers_with_its_final_state(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    fake.not_started_for = 1  # then terminated: no start, ever
    fake.location = None
    fake.fallback_event = story()[-1]
    assert ids(await collect(fake.stream)) == [cursors.terminal()]


async def test_a_watcher_follows_its_jobs_partition_only_while_it_watches(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    events = story(tokens=2)
    fake.replayed = events[:2]
    follows: list[dict[int, int]] = []

    def then() -> None:
        follows.append(dict(fake.log.follows))
        fake.route(events[2:])

    seen = await collect(fake.stream, then=then)
    assert ids(seen) == ids(events)
    assert follows == [{PARTITION: 1}]
    assert fake.log.follows == {}


async def test_records_of_a_partition_nobody_follows_reach_no_watcher(tmp_path: Path) -> None:
    """What a log reader routes is decided by what the hub follows: a record of another partition is not read."""
    fake = Fake(tmp_path)
    events = story(tokens=1)
    fake.replayed = events[:1]
    elsewhere = (PARTITION + 1) % 8

    def route_elsewhere_then_here() -> None:
        for offset, event in enumerate(events[1:], start=BOUNDARY):
            fake.log.append(kafka_record(elsewhere, offset, JOB.encode(), event.SerializeToString()))
        fake.route(events[1:])

    seen = await collect(fake.stream, then=route_elsewhere_then_here)
    assert ids(seen) == ids(events)
