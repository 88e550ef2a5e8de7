"""The event log as Kafka holds it, read for the event hub: one tail consumer for the partitions this process
follows, a small pool of consumers for replays, and each followed partition's recent records in memory.

The tail follows the partitions this replica owns (jobstream/partitioning.py) always, and any other one while
a watcher of one of its jobs is here, plus FOLLOW_IDLE_S after the last one leaves, so that their clients'
reconnects replay from memory. A replica of R so reads 1/R of the topic, not all of it; a client routed to the
wrong replica costs that replica one more partition for a while, never a wrong answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter

from jobstream.connections import kafka_options
from jobstream.event_log import job_records
from jobstream.log_reader import LogExpired, LogRecord, Sink
from jobstream.partitioning import owned_partitions
from jobstream.recent_records import RecentRecords
from jobstream.replay_pool import ReplayPool
from jobstream.settings import Settings

log = logging.getLogger(__name__)

POLL_MS = 100
REPLAY_CONSUMERS = 4
# One owner (tenant) replays on at most this many of them at once, so that it cannot make everyone else's
# reconnects wait; a watcher waits for one as long as it takes (jobstream/replay_pool.py says why).
REPLAYS_PER_OWNER = REPLAY_CONSUMERS // 2
# How long a partition nobody here watches any more is still tailed: reconnects of its clients within it
# replay from memory (a replica that died sends them all here within seconds).
FOLLOW_IDLE_S = 30.0
# How long a replay waits for the tail's read-back of a partition it just joined to reach the replay's end
# before it reads the log with a consumer of its own instead.
CATCH_UP_S = 5.0
# Between the tail's tries while Kafka is away: from 0.2 s, doubling, jittered, at most 5 s.
RETRY_WAIT = wait_exponential_jitter(initial=0.2, max=5.0)


class KafkaLogReader:
    """`owned`: the partitions always tailed; None for this replica's share (REPLICA_INDEX of REPLICAS)."""

    def __init__(self, settings: Settings, owned: Iterable[int] | None = None) -> None:
        self.settings = settings
        self.topic = settings.events_topic
        self._owned_given = None if owned is None else frozenset(owned)
        self.owned: frozenset[int] = frozenset()
        self._partition_count = 0
        self._tail: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sink: Sink | None = None
        self.replays: ReplayPool[AIOKafkaConsumer] = ReplayPool(REPLAYS_PER_OWNER)
        # Per tailed partition: the next offset the tail reads, the first it routes, what it read lately.
        self._read: dict[int, int] = {}
        self._routed_from: dict[int, int] = {}
        self._recent: dict[int, RecentRecords] = {}
        self._follows: dict[int, int] = {}  # per partition not owned: how many watchers need it
        self._idle_since: dict[int, float] = {}  # ...and since when none has
        self._joining: dict[int, asyncio.Future[int]] = {}  # asked for, until the tail has it
        self.records_read = 0
        self._outage_since: float | None = None  # time.monotonic() when the tail last stopped reading

    @property
    def partition_count(self) -> int:
        return self._partition_count

    @property
    def tailed(self) -> frozenset[int]:
        return frozenset(self._read)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_options(self.settings),
            enable_auto_commit=False,
            fetch_max_wait_ms=POLL_MS,
            max_partition_fetch_bytes=1024 * 1024,
        )

    def _tp(self, partition: int) -> TopicPartition:
        return TopicPartition(self.topic, partition)

    async def start(self, sink: Sink) -> None:
        self._sink = sink
        self._tail = self._consumer()
        await self._tail.start()
        self._partition_count = await self._count_partitions(self._tail)
        if self._owned_given is None:
            self.owned = owned_partitions(self.settings.replica_index, self.settings.replicas, self._partition_count)
        else:
            self.owned = self._owned_given
        await self._start_reading(sorted(self.owned))
        self._assign()
        for _ in range(REPLAY_CONSUMERS):
            consumer = self._consumer()
            await consumer.start()
            self.replays.add(consumer)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._tail:
            await self._tail.stop()
        for consumer in self.replays.drain():
            await consumer.stop()

    def follow(self, partition: int) -> None:
        if partition in self.owned:
            return
        self._follows[partition] = self._follows.get(partition, 0) + 1
        self._idle_since.pop(partition, None)
        if partition not in self._read and partition not in self._joining:
            self._joining[partition] = asyncio.get_running_loop().create_future()

    def unfollow(self, partition: int) -> None:
        if partition in self.owned:
            return
        left = self._follows.pop(partition) - 1
        if left:
            self._follows[partition] = left
        else:
            self._idle_since[partition] = asyncio.get_running_loop().time()

    async def routed_from(self, partition: int) -> int:
        if partition in self._read:
            return max(self._read[partition], self._routed_from[partition])
        joining = self._joining.get(partition)
        if joining is None:
            raise RuntimeError(f"partition {partition} is neither owned nor followed")
        return await asyncio.shield(joining)

    def lag(self) -> dict[int, int]:
        if self._tail is None:
            return {}
        lag = {}
        for partition, read in self._read.items():
            end = self._tail.highwater(self._tp(partition))
            if end is not None:
                lag[partition] = max(0, end - read)
        return lag

    async def _count_partitions(self, consumer: AIOKafkaConsumer) -> int:
        for _ in range(100):
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return len(found)
            await consumer.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {self.topic} not found in Kafka")

    async def _start_reading(self, partitions: list[int]) -> None:
        """Route `partitions` from their end on, having read back up to `bridge_recent_records` of each first."""
        if not partitions:
            return
        assert self._tail is not None
        tps = [self._tp(partition) for partition in partitions]
        ends = await self._tail.end_offsets(tps)
        begins = await self._tail.beginning_offsets(tps)
        capacity = self.settings.bridge_recent_records
        for partition, tp in zip(partitions, tps, strict=True):
            self._routed_from[partition] = ends[tp]
            self._read[partition] = max(begins[tp], ends[tp] - capacity)
            self._recent[partition] = RecentRecords(capacity, first_offset=self._read[partition])

    def _assign(self) -> None:
        """Tail exactly the partitions in `_read`, each from where it stands (assign() forgets positions)."""
        assert self._tail is not None
        self._tail.assign([self._tp(partition) for partition in self._read])
        for partition, offset in self._read.items():
            self._tail.seek(self._tp(partition), offset)

    async def _apply_changes(self) -> None:
        """Join the partitions watchers asked for and leave the ones idle for FOLLOW_IDLE_S."""
        now = asyncio.get_running_loop().time()
        leaving = [partition for partition, since in self._idle_since.items() if now - since >= FOLLOW_IDLE_S]
        joining = [partition for partition in self._joining if partition not in self._read]
        if not leaving and not joining:
            return
        for partition in leaving:
            del self._idle_since[partition]
            for state in (self._read, self._routed_from, self._recent):
                state.pop(partition, None)
        await self._start_reading(joining)
        self._assign()
        for partition in joining:
            joined = self._joining.pop(partition)
            if not joined.done():
                joined.set_result(self._routed_from[partition])

    async def _fetch(self) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        assert self._tail is not None
        await self._apply_changes()
        if not self._read:
            await asyncio.sleep(POLL_MS / 1000)
            return {}
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await self._tail.getmany(timeout_ms=POLL_MS)
        return batch

    async def _run(self) -> None:
        # The broker restarting must not end every stream: retry, saying so once when it starts and once when
        # it ends, not with a traceback per try. One retrying call for the tail's whole life, not one per fetch:
        # tenacity's bookkeeping would cost more than the fetch.
        retrying = AsyncRetrying(wait=RETRY_WAIT, before_sleep=self._outage_began, reraise=True)
        await retrying(self._tail_forever)

    async def _tail_forever(self) -> None:
        while True:
            batch = await self._fetch()
            if self._outage_since is not None:
                log.warning("the Kafka tail reads again (after %.1f s)", time.monotonic() - self._outage_since)
                self._outage_since = None
            for tp, records in batch.items():
                self._take(tp.partition, records)

    def _outage_began(self, state: RetryCallState) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning("the Kafka tail cannot read (%r): retrying with backoff until it can", error)

    def _take(self, partition: int, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        if not records or partition not in self._read:
            return
        self.records_read += len(records)
        self._recent[partition].extend(records)
        self._read[partition] = records[-1].offset + 1
        routed_from = self._routed_from[partition]
        if records[-1].offset < routed_from:
            return  # still reading back what the tail keeps in memory
        assert self._sink is not None
        sink = self._sink
        if records[0].offset >= routed_from:
            for record in records:
                sink(record)
        else:
            for record in records:
                if record.offset >= routed_from:
                    sink(record)

    async def replay(
        self, job_id: str, partition: int, offset: int, boundary: int, owner: str
    ) -> AsyncIterator[LogRecord]:
        if offset >= boundary:
            return
        key = job_id.encode()
        remembered = await self._remembered(partition, offset, boundary, key)
        if remembered is not None:
            for record in remembered:
                yield record
            return
        consumer = await self.replays.take(owner)
        try:
            tp = self._tp(partition)
            consumer.assign([tp])
            if offset < (await consumer.beginning_offsets([tp]))[tp]:
                raise LogExpired(job_id)
            async for record in job_records(consumer, tp, job_id, offset, boundary, POLL_MS):
                yield record
        finally:
            self.replays.give_back(consumer, owner)

    async def _remembered(self, partition: int, offset: int, boundary: int, key: bytes) -> list[LogRecord] | None:
        """The job's records in [offset, boundary) from memory, or None when memory does not hold them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP_S
        while True:
            recent = self._recent.get(partition)
            if recent is None or not recent.covers(offset):
                return None
            if self._read[partition] >= boundary:
                return recent.between(offset, boundary, key)
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(POLL_MS / 1000)
