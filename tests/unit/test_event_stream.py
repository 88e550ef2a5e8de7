"""EventStream.watch without Kafka: the cases decided before the event log is touched."""

from __future__ import annotations

import asyncio

from jobstream import cursors
from jobstream.event_log import LogLocator
from jobstream.event_stream import EventStream
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent


async def never_located(job_id: str) -> LogLocator | None:
    raise AssertionError("a watcher resuming after the terminal event must not look the job up")


async def no_fallback(job_id: str) -> JobEvent | None:
    raise AssertionError("a watcher resuming after the terminal event must not rebuild it")


async def test_resuming_after_the_terminal_event_ends_at_once() -> None:
    # Never started: a watcher that waited for the log (or for new events) would hang here.
    stream = EventStream(Settings(), never_located, no_fallback)
    async with asyncio.timeout(2):
        events = [event async for event in stream.watch("job_" + "a" * 26, cursors.terminal())]
    assert events == []
