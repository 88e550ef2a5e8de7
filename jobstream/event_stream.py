"""Fan-out of the event log to many watchers: one shared tail consumer, a small pool for replays.

`EventStream.watch(job_id, after)` yields the job's events after the cursor `after`, exactly once and in
order: replay of what is already in the log (from where the job's story starts) joins the live tail with
no gap and no duplicate, because every event carries a cursor that sorts in story order and a watcher
yields only events whose cursor sorts after the last one it yielded (and a token only after the token
before it, so a gap in the log waits to be filled by the retry that re-publishes it; see `_Sequence`).

Used by the SSE bridge and by JobService.WatchJob, so both serve the same events with the same ids. The
bridge reads `watch_batches`: everything a watcher has pending at once, each event a `Delivery` that every
watcher of the record shares, so its SSE frame is rendered once per record, not once per watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from jobstream import cursors
from jobstream.connections import kafka_options
from jobstream.event_log import TERMINAL_TYPES, LogLocator, event_json, readable_event
from jobstream.replay_pool import ReplayPool
from jobstream.settings import Settings
from jobstream.tracing import RecordHeaders
from jobstream.v1.event_pb2 import JobEvent

log = logging.getLogger(__name__)

# Where a job's story starts in the log, or None while it has not started.
Locator = Callable[[str], Awaitable[LogLocator | None]]
# The terminal event built from a finished job's state, for jobs whose events left Kafka's retention.
Fallback = Callable[[str], Awaitable[JobEvent | None]]

POLL_MS = 100
REPLAY_CONSUMERS = 4
# One owner (tenant) replays on at most this many of them at once, so that it cannot make everyone else's
# reconnects wait; a watcher waits for one as long as it takes (jobstream/replay_pool.py says why).
REPLAYS_PER_OWNER = REPLAY_CONSUMERS // 2
# How often a watcher that waits for a job's first record on the tail asks Temporal anyway: the safety net
# for a workflow that ends (terminated) before it publishes anything.
START_CHECK_S = 1.0
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SlowConsumerError(Exception):
    """The watcher fell too far behind; it should reconnect with its last event id."""


class Delivery:
    """One event on its way to watchers: the tail routes one per record to every watcher of the job, so what
    is derived from the event (its SSE frame, its neighbours' ids) is computed once, when first asked for."""

    __slots__ = ("_after", "_before", "_frame", "event", "headers", "locator")

    def __init__(
        self, event: JobEvent, locator: LogLocator | None = None, headers: RecordHeaders | None = None
    ) -> None:
        self.event = event
        self.locator = locator  # where the tail read it; None for a replayed or rebuilt event
        self.headers = headers  # the record's (a producer's trace context, when traces are on)
        self._frame: bytes | None = None
        self._before: str | None = None
        self._after: str | None = None

    @property
    def frame(self) -> bytes:
        """The event as a Server-Sent Events frame (`id:`, `event:`, `data:` JSON)."""
        if self._frame is None:
            self._frame = sse_frame(self.event)
        return self._frame

    @property
    def token_before(self) -> str:
        """The id of the token just before this one in its stage ("" if none)."""
        if self._before is None:
            self._before = cursors.next_token(self.event.id, -1) or ""
        return self._before

    @property
    def token_after(self) -> str:
        """The id the token after this one has, if this is a token ("" otherwise: no id matches it)."""
        if self._after is None:
            self._after = cursors.next_token(self.event.id) or ""
        return self._after


def sse_frame(event: JobEvent) -> bytes:
    """CRLF line ends, as sse-starlette (the bridge's earlier writer) used; EventSource accepts any of CRLF, CR
    and LF. json.dumps escapes control characters, so the data is a single line; the split is a guard."""
    name = _LINE_BREAK.sub("", event.type)
    data = "".join(f"data: {line}\r\n" for line in _LINE_BREAK.split(event_json(event)))
    return f"id: {event.id}\r\nevent: {name}\r\n{data}\r\n".encode()


class _Subscriber:
    """A watcher's mailbox: the tail appends, the watcher takes everything pending at once."""

    __slots__ = ("_wake", "capacity", "job_id", "overflowed", "pending")

    def __init__(self, job_id: str, capacity: int) -> None:
        self.job_id = job_id
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


class EventStream:
    def __init__(self, settings: Settings, locate: Locator, fallback: Fallback, queue_size: int = 1024) -> None:
        self.settings = settings
        self.topic = settings.events_topic
        self.locate = locate
        self.fallback = fallback
        self.queue_size = queue_size
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self._tail: AIOKafkaConsumer | None = None
        self._tail_task: asyncio.Task[None] | None = None
        self.replays: ReplayPool[AIOKafkaConsumer] = ReplayPool(REPLAYS_PER_OWNER)
        # Per partition, the offset the tail will read next: everything before it was routed already.
        self._positions: dict[int, int] = {}
        self._locating: dict[str, asyncio.Future[LogLocator | None]] = {}
        self._ready = asyncio.Event()

    @property
    def partition_count(self) -> int:
        """The events topic's partitions, as Kafka reported them at start."""
        return len(self._positions)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_options(self.settings),
            enable_auto_commit=False,
            fetch_max_wait_ms=POLL_MS,
            max_partition_fetch_bytes=1024 * 1024,
        )

    async def start(self) -> None:
        self._tail = self._consumer()
        await self._tail.start()
        partitions = await self._partitions(self._tail)
        self._tail.assign(partitions)
        await self._tail.seek_to_end(*partitions)
        for tp in partitions:
            self._positions[tp.partition] = await self._tail.position(tp)
        for _ in range(REPLAY_CONSUMERS):
            consumer = self._consumer()
            await consumer.start()
            self.replays.add(consumer)
        self._tail_task = asyncio.create_task(self._run_tail(partitions))
        self._ready.set()

    async def stop(self) -> None:
        if self._tail_task:
            self._tail_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail_task
        if self._tail:
            await self._tail.stop()
        for consumer in self.replays.drain():
            await consumer.stop()

    def tail_lag(self) -> dict[int, int]:
        """Per partition, how many records the tail has yet to read (as of its last fetch's end offsets)."""
        if self._tail is None:
            return {}
        lag = {}
        for partition, position in self._positions.items():
            end = self._tail.highwater(TopicPartition(self.topic, partition))
            if end is not None:
                lag[partition] = max(0, end - position)
        return lag

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        for _ in range(100):
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            await consumer.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} not found in Kafka")

    async def _run_tail(self, partitions: list[TopicPartition]) -> None:
        assert self._tail is not None
        while True:
            try:
                batch = await self._tail.getmany(*partitions, timeout_ms=POLL_MS)
            except Exception:  # the broker restarting must not kill every stream: retry
                log.exception("tail consumer failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for tp, records in batch.items():
                for record in records:
                    self._route(record)
                if records:
                    self._positions[tp.partition] = records[-1].offset + 1

    def _route(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None or record.value is None:
            return
        subscribers = self._subscribers.get(record.key.decode(errors="replace"))
        if not subscribers:
            return
        event = readable_event(record.value)
        if event is None:
            return
        delivery = Delivery(event, LogLocator(record.partition, record.offset), record.headers)
        for subscriber in subscribers:
            subscriber.put(delivery)

    async def watch(self, job_id: str, after: str = "", owner: str = "") -> AsyncIterator[JobEvent]:
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
        subscriber = _Subscriber(job_id, self.queue_size)
        self._subscribers.setdefault(job_id, set()).add(subscriber)
        # Where the tail stood as this watcher subscribed: every record from there on reaches its queue.
        subscribed_at = dict(self._positions)
        try:
            last = after
            sequence = _Sequence(after)
            start = await self._wait_for_start(job_id, subscriber)
            if start is None:
                event = await self.fallback(job_id)
                if event is not None and event.id > last:
                    yield [Delivery(event)]
                return
            partition, offset = start
            # Subscribed first, so anything the tail routed since is queued; replay only what the tail had
            # passed when the watcher subscribed. A watcher that joins before the job's first event (the
            # usual case, right after SubmitJob) replays nothing and never waits for a replay consumer.
            boundary = subscribed_at.get(partition, 0)
            try:
                # aclosing: a watcher that stops early hands its replay consumer back at once, not at GC.
                replaying = self._replay(job_id, partition, offset, boundary, owner)
                async with contextlib.aclosing(replaying) as replay:
                    async for replayed in replay:
                        ready, ended = _through_terminal(sequence.accept(replayed))
                        if ready:
                            last = ready[-1].event.id
                            yield ready
                        if ended:
                            return
            except _Expired:
                # The job's events have left Kafka's retention: answer with its final state.
                event = await self.fallback(job_id)
                if event is not None and event.id > last:
                    yield [Delivery(event)]
                return
            while True:
                if subscriber.overflowed and not subscriber.pending:
                    raise SlowConsumerError(f"watcher of {job_id} fell behind; resume after {last}")
                batch = await subscriber.take()
                ready, ended = _through_terminal([each for delivery in batch for each in sequence.accept(delivery)])
                if ready:
                    last = ready[-1].event.id
                    yield ready
                if ended:
                    return
        finally:
            watchers = self._subscribers.get(job_id)
            if watchers is not None:
                watchers.discard(subscriber)
                if not watchers:
                    del self._subscribers[job_id]

    async def _wait_for_start(self, job_id: str, subscriber: _Subscriber) -> LogLocator | None:
        """The job's first offset; waits while the job exists but has not published job.started yet.

        A watcher that subscribed before the job began sees job.started on the tail: that record is the
        start. Waiting for it, rather than asking Temporal every poll until the workflow's memo names it,
        spares a DescribeWorkflowExecution per job every 100 ms while jobs wait to start."""
        try:
            return await self._locate_shared(job_id)
        except NotStartedYet:
            pass
        while not await subscriber.arrives(within=START_CHECK_S):
            try:
                return await self._locate_shared(job_id)
            except NotStartedYet:
                pass
        first = subscriber.pending[0]
        if first.event.id == cursors.job_started() and first.locator is not None:
            # Routed after the watcher subscribed, so at or past `subscribed_at`: there is nothing to replay.
            return first.locator
        # job.started was routed just before the watcher subscribed: only the memo knows where it is.
        while True:
            try:
                return await self._locate_shared(job_id)
            except NotStartedYet:
                await asyncio.sleep(0.1)

    async def _locate_shared(self, job_id: str) -> LogLocator | None:
        """One locate call per job at a time, shared by all its watchers: a thousand viewers joining one
        job must not ask Temporal a thousand times every poll."""
        pending = self._locating.get(job_id)
        if pending is None:
            pending = asyncio.ensure_future(self.locate(job_id))
            self._locating[job_id] = pending

            def forget(done: asyncio.Future[LogLocator | None]) -> None:
                if self._locating.get(job_id) is done:
                    del self._locating[job_id]
                if not done.cancelled():
                    done.exception()  # retrieved here, so a result nobody awaits any more is not logged

            pending.add_done_callback(forget)
        # Shielded: one watcher leaving must not cancel the lookup the others wait on.
        return await asyncio.shield(pending)

    async def _replay(
        self, job_id: str, partition: int, offset: int, boundary: int, owner: str = ""
    ) -> AsyncGenerator[Delivery, None]:
        if offset >= boundary:
            return
        consumer = await self.replays.take(owner)
        key = job_id.encode()
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            if offset < (await consumer.beginning_offsets([tp]))[tp]:
                raise _Expired
            consumer.seek(tp, offset)
            while True:
                position = await consumer.position(tp)
                if position >= boundary:
                    return
                batch = await consumer.getmany(tp, timeout_ms=POLL_MS)
                for record in batch.get(tp, []):
                    if record.offset >= boundary:
                        return
                    if record.key == key and record.value is not None:
                        event = readable_event(record.value)
                        if event is not None:
                            yield Delivery(event, headers=record.headers)
        finally:
            self.replays.give_back(consumer, owner)


def _through_terminal(ready: list[Delivery]) -> tuple[list[Delivery], bool]:
    """The events up to the job's terminal one, and whether it is among them: nothing follows it."""
    for index, delivery in enumerate(ready):
        if delivery.event.type in TERMINAL_TYPES:
            return ready[: index + 1], True
    return ready, False


class _Sequence:
    """Which events a watcher delivers: each id once, in story order, and a stage's tokens without a gap.

    A gap is possible: when the broker restarts, a batch of a model stage's tokens can time out in the
    producer while a later batch still reaches the log. The attempt then fails and its retry re-publishes
    from the first missing index; a watcher that delivered the tokens after the gap would drop the late
    ones as already seen. So a token is delivered only after its predecessor, and waits until then.
    """

    def __init__(self, after: str) -> None:
        self.last = after
        # The id the token after `last` has, if `last` is a token ("" otherwise: no id matches it).
        self._next = cursors.next_token(after) or ""
        self._held: dict[str, Delivery] = {}

    def accept(self, delivery: Delivery) -> list[Delivery]:
        event = delivery.event
        if event.id <= self.last:
            return []  # re-sent by a retried activity, or before the watcher's cursor
        if event.type == "token" and event.token.index > 0 and self.last != delivery.token_before:
            self._held[event.id] = delivery
            return []
        ready = [delivery]
        self._advance(delivery)
        while (held := self._held.pop(self._next, None)) is not None:
            ready.append(held)
            self._advance(held)
        if self._held:
            # Tokens held behind a later non-token event (a failed or cancelled job) can never come in order.
            self._held = {key: value for key, value in self._held.items() if key > self.last}
        return ready

    def _advance(self, delivery: Delivery) -> None:
        self.last = delivery.event.id
        self._next = delivery.token_after


class NotStartedYet(Exception):
    """Raised by a Locator for a job that exists but has not published its first event yet."""


class _Expired(Exception):
    pass
