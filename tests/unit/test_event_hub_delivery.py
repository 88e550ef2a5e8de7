"""How the event hub hands events to its watchers, over a log reader in memory: a slow watcher is told where to
resume, a watcher takes everything pending in one batch, watchers of one record share its delivery and frame,
and a watcher follows its job's partition only while it watches.

The scripted hub and the job's story are tests/unit/event_hub_kit.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from jobstream import cursors
from jobstream.delivery import Delivery
from jobstream.event_hub import SlowConsumerError
from jobstream.v1.event_pb2 import JobEvent
from sse_bridge.sse_encoding import frame_of
from tests.unit.event_hub_kit import BOUNDARY, JOB, PARTITION, Fake, collect, ids, record, story
from tests.unit.memory_log import kafka_record


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
