"""How the event hub finds where a job's story starts, over a log reader in memory: it waits while the job has
not started, takes the start from the tail when the watcher joined early, locates a start routed just before it
subscribed, and answers with the job's final state when the start is unknown or past retention.

The scripted hub and the job's story are tests/unit/event_hub_kit.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from jobstream import cursors
from tests.unit.event_hub_kit import BOUNDARY, JOB, PARTITION, START_OFFSET, Fake, collect, ids, story


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
