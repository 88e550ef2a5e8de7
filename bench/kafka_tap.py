"""A second reader of the event log, configured like the bridge's tail consumer, to split Kafka from the bridge.

It tails every partition from the end and notes when each watched job's event reached it: worker stamp ->
tap is the Kafka hop (producer, broker, consumer fetch); tap -> SSE client approximates the bridge's own
cost (routing, JSON, HTTP), since the tap and the bridge fetch the same records with the same settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition

from jobstream.event_log import parse_event
from jobstream.kafka_reader import POLL_MS
from jobstream.settings import Settings


class KafkaTap:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.watched: set[bytes] = set()
        self.seen: dict[tuple[str, str], float] = {}  # (job id, event id) -> time.time() at the tap
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    def watch(self, job_id: str) -> None:
        self.watched.add(job_id.encode())

    def at(self, job_id: str, event_id: str) -> float | None:
        return self.seen.get((job_id, event_id))

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=POLL_MS,
            max_partition_fetch_bytes=1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        topic = self.settings.events_topic
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)  # resolve the end offsets now, not at the first fetch
        self._task = asyncio.create_task(self._run(consumer, partitions))

    async def _run(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        while True:
            batch = await consumer.getmany(*partitions, timeout_ms=POLL_MS)
            now = time.time()
            for records in batch.values():
                for record in records:
                    if record.key in self.watched and record.value is not None:
                        event = parse_event(record.value)
                        self.seen[(event.job_id, event.id)] = now

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


@contextlib.asynccontextmanager
async def kafka_tap(settings: Settings) -> AsyncIterator[KafkaTap]:
    tap = KafkaTap(settings)
    await tap.start()
    try:
        yield tap
    finally:
        await tap.stop()
