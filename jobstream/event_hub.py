"""Fan-out of the event log to many watchers: routes the records a log reader tails to the watchers of their
jobs, and joins each watcher's replay of what the log already holds with the live records, in story order.

`EventHub.watch(job_id, after)` yields the job's events after the cursor `after`, exactly once and in order:
replay of what is already in the log (from where the job's story starts) joins the live tail with no gap and no
duplicate, because every event carries a cursor that sorts in story order and a watcher yields only events whose
cursor sorts after the last one it yielded (and a token only after the token before it, so a gap in the log
waits to be filled by the retry that re-publishes it; see `jobstream.delivery.Sequence`).

Used by the SSE bridge and by JobService.WatchJob, so both serve the same events with the same ids, each
encoding them at its own edge. The bridge reads `watch_batches`: everything a watcher has pending at once, each
event a `Delivery` that every watcher of the record shares, so its encoding is done once per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from jobstream import cursors
from jobstream.delivery import Delivery, Told
from jobstream.event_log import LogLocator, readable_event
from jobstream.log_reader import LogExpired, LogReader, LogRecord
from jobstream.partitioning import partition_of
from jobstream.shared_calls import SharedCalls
from jobstream.v1.event_pb2 import JobEvent

# Where a job's story starts in the log, or None while it has not started.
Locator = Callable[[str], Awaitable[LogLocator | None]]
# The terminal event built from a finished job's state, for jobs whose events left Kafka's retention.
Fallback = Callable[[str], Awaitable[JobEvent | None]]

# How often a watcher that waits for a job's first record on the tail asks Temporal anyway: the safety net
# for a workflow that ends (terminated) before it publishes anything.
START_CHECK_S = 1.0


class SlowConsumerError(Exception):
    """The watcher fell too far behind; it should reconnect with its last event id."""


class NotStartedYet(Exception):
    """Raised by a Locator for a job that exists but has not published its first event yet."""


class _Subscriber:
    """A watcher's mailbox: the hub appends, the watcher takes everything pending at once."""

    __slots__ = ("_wake", "capacity", "overflowed", "pending")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.pending: list[Delivery] = []
        self.overflowed = False
        self._wake: asyncio.Future[None] | None = None

    def put(self, delivery: Delivery) -> None:
        if self.overflowed:
            return
        if len(self.pending) >= self.capacity:
            # A slow client loses its connection, not the other clients their latency.
            self.overflowed = True
            return
        self.pending.append(delivery)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def take(self) -> list[Delivery]:
        while not self.pending:
            await self._woken()
        batch, self.pending = self.pending, []
        return batch

    async def arrives(self, within: float) -> bool:
        """Whether something is pending within `within` seconds (taking nothing)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not self.pending:
                    await self._woken()
        return bool(self.pending)

    async def _woken(self) -> None:
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await self._wake
        finally:
            self._wake = None


class EventHub:
    def __init__(self, reader: LogReader, locate: Locator, fallback: Fallback, queue_size: int = 1024) -> None:
        self.reader = reader
        self.fallback = fallback
        self.queue_size = queue_size
        self._subscribers: dict[bytes, set[_Subscriber]] = {}
        # One locate call per job at a time, shared by all its watchers.
        self._locate = SharedCalls(locate)
        self._ready = asyncio.Event()

    @property
    def watched_jobs(self) -> int:
        return len(self._subscribers)

    async def start(self) -> None:
        await self.reader.start(self.route)
        self._ready.set()

    async def stop(self) -> None:
        await self.reader.stop()

    def route(self, record: LogRecord) -> None:
        """The log reader's sink: a tailed record to every watcher of its job (decoded only if it has one)."""
        key = record.key
        if key is None:
            return
        subscribers = self._subscribers.get(key)
        if not subscribers or record.value is None:
            return
        event = readable_event(record.value)
        if event is None:
            return
        delivery = Delivery(event, LogLocator(record.partition, record.offset), record.headers, time.time())
        for subscriber in subscribers:
            subscriber.put(delivery)

    async def watch(self, job_id: str, after: str = "", owner: str = "") -> AsyncGenerator[JobEvent, None]:
        # aclosing: a watcher that stops early leaves the job's subscribers (and hands back a replay consumer)
        # at once, not when the generator is collected.
        async with contextlib.aclosing(self.watch_batches(job_id, after, owner)) as batches:
            async for batch in batches:
                for delivery in batch:
                    yield delivery.event

    async def watch_batches(
        self, job_id: str, after: str = "", owner: str = ""
    ) -> AsyncGenerator[list[Delivery], None]:
        """What `watch` yields, as lists: all that the watcher has pending when it asks (never empty).

        `owner` (the job's tenant) bounds how many replay consumers that owner's watchers hold at once."""
        if after >= cursors.terminal():
            # Resuming after the terminal event: the story is over. Without this the watcher would replay
            # nothing new and then wait on the live tail forever for an event that can never come.
            return
        await self._ready.wait()
        key = job_id.encode()
        subscriber = _Subscriber(self.queue_size)
        self._subscribers.setdefault(key, set()).add(subscriber)
        followed = [partition_of(job_id, self.reader.partition_count)]
        self.reader.follow(followed[0])
        try:
            # Every record of the partition from `boundary` on reaches the subscriber's queue; the replay
            # covers what came before it.
            boundary = await self.reader.routed_from(followed[0])
            async with contextlib.aclosing(self._story(job_id, after, owner, subscriber, boundary, followed)) as story:
                async for ready in story:
                    yield ready
        finally:
            for partition in followed:
                self.reader.unfollow(partition)
            watchers = self._subscribers.get(key)
            if watchers is not None:
                watchers.discard(subscriber)
                if not watchers:
                    del self._subscribers[key]

    async def _story(
        self, job_id: str, after: str, owner: str, subscriber: _Subscriber, boundary: int, followed: list[int]
    ) -> AsyncGenerator[list[Delivery], None]:
        story = Told(after)
        start = await self._wait_for_start(job_id, subscriber)
        if start is None:
            async for ready in self._final_state(job_id, story):
                yield ready
            return
        partition, offset = start
        if partition != followed[0]:
            # Placed elsewhere than its id says (the partition count changed under a running job): follow that.
            followed.append(partition)
            self.reader.follow(partition)
            boundary = await self.reader.routed_from(partition)
        # A watcher that joins before the job's first event (the usual case, right after SubmitJob) replays
        # nothing and never waits for a replay consumer.
        try:
            async with contextlib.aclosing(self._replayed(job_id, partition, offset, boundary, owner, story)) as replay:
                async for ready in replay:
                    yield ready
        except LogExpired:
            # The job's events have left Kafka's retention: answer with its final state.
            async for ready in self._final_state(job_id, story):
                yield ready
            return
        while not story.ended:
            if subscriber.overflowed and not subscriber.pending:
                raise SlowConsumerError(f"watcher of {job_id} fell behind; resume after {story.last}")
            if ready := story.told(await subscriber.take()):
                yield ready

    async def _replayed(
        self, job_id: str, partition: int, offset: int, boundary: int, owner: str, story: Told
    ) -> AsyncGenerator[list[Delivery], None]:
        """The job's story from the log up to `boundary` (LogExpired once it has left Kafka's retention)."""
        replaying = self.reader.replay(job_id, partition, offset, boundary, owner)
        async with contextlib.aclosing(_decoded(replaying)) as replay:
            async for replayed in replay:
                if ready := story.told([replayed]):
                    yield ready
                if story.ended:
                    return

    async def _final_state(self, job_id: str, story: Told) -> AsyncGenerator[list[Delivery], None]:
        """The job's terminal event rebuilt from its final state, if the watcher has not seen it."""
        event = await self.fallback(job_id)
        if event is not None and event.id > story.last:
            yield [Delivery(event)]

    async def _wait_for_start(self, job_id: str, subscriber: _Subscriber) -> LogLocator | None:
        """The job's first offset; waits while the job exists but has not published job.started yet.

        A watcher that subscribed before the job began sees job.started on the tail: that record is the
        start. Waiting for it, rather than asking Temporal every poll until the workflow's memo names it,
        spares a DescribeWorkflowExecution per job every 100 ms while jobs wait to start."""
        try:
            return await self._locate(job_id)
        except NotStartedYet:
            pass
        while not await subscriber.arrives(within=START_CHECK_S):
            try:
                return await self._locate(job_id)
            except NotStartedYet:
                pass
        first = subscriber.pending[0]
        if first.event.id == cursors.job_started() and first.locator is not None:
            # Routed after the watcher subscribed, so at or past its boundary: there is nothing to replay.
            return first.locator
        # job.started was routed just before the watcher subscribed: only the memo knows where it is.
        while True:
            try:
                return await self._locate(job_id)
            except NotStartedYet:
                await asyncio.sleep(0.1)


async def _decoded(records: AsyncIterator[LogRecord]) -> AsyncGenerator[Delivery, None]:
    async for record in records:
        if record.value is not None and (event := readable_event(record.value)) is not None:
            yield Delivery(event, headers=record.headers)
