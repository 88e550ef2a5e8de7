"""The Kafka log reader against the real broker: a replica tails only the partitions it owns, follows another
only while asked (and leaves it after idling), replays recent stories from memory, and a job's events land on
the partition its id names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.structs import TopicPartition

from jobstream import cursors, kafka_reader
from jobstream.event_log import EventLog
from jobstream.kafka_reader import KafkaLogReader
from jobstream.log_reader import LogExpired, LogRecord
from jobstream.partitioning import partition_of
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent, TokenEvent
from tests.eventually import eventually

PARTITIONS = 4


def job_in(partition: int) -> str:
    """A job id whose events go to `partition`."""
    for n in range(10_000):
        job_id = "job_" + f"{n:026d}".translate(str.maketrans("0123456789", "abcdefghij"))
        if partition_of(job_id, PARTITIONS) == partition:
            return job_id
    raise AssertionError(partition)


def token(job_id: str, index: int) -> JobEvent:
    return JobEvent(id=cursors.token(0, index), job_id=job_id, type="token", token=TokenEvent(index=index, text="x"))


@pytest.fixture
async def topic(stack: Settings) -> AsyncIterator[Settings]:
    name = f"reader-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
        yield stack.model_copy(update={"events_topic": name, "events_partitions": PARTITIONS})
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def publish(settings: Settings, events: list[JobEvent]) -> None:
    log = EventLog(settings)
    await log.start()
    try:
        for event, located in zip(events, await log.publish_all(events), strict=True):
            assert located.partition == partition_of(event.job_id, PARTITIONS)
    finally:
        await log.stop()


async def test_a_replica_reads_only_what_it_owns_and_follows_others_while_asked(
    topic: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_reader, "FOLLOW_IDLE_S", 0.5)
    settings = topic.model_copy(update={"replicas": 2, "replica_index": 0})
    received: list[LogRecord] = []
    reader = KafkaLogReader(settings)
    await reader.start(received.append)
    try:
        assert reader.owned == {0, 2}
        assert reader.tailed == {0, 2}
        jobs = [job_in(partition) for partition in range(PARTITIONS)]
        await publish(settings, [token(job_id, 0) for job_id in jobs])
        await eventually(lambda: len(received) == 2, what="two records")
        await asyncio.sleep(0.5)
        assert sorted(record.partition for record in received) == [0, 2]
        assert reader.records_read == 2  # the others were not even read

        reader.follow(3)
        boundary = await reader.routed_from(3)
        assert boundary == 1  # what partition 3 held when it was joined is replayed, not routed
        assert reader.tailed == {0, 2, 3}
        await publish(settings, [token(jobs[3], 1), token(jobs[1], 1)])
        await eventually(lambda: any(record.partition == 3 for record in received), what="a record of partition 3")
        assert [(record.partition, record.offset) for record in received if record.partition == 3] == [(3, 1)]
        # Its story before the boundary, from memory: the tail read it back when it joined.
        replayed = [record async for record in reader.replay(jobs[3], 3, 0, boundary, "tenant")]
        assert [record.offset for record in replayed] == [0]

        reader.unfollow(3)
        await eventually(lambda: reader.tailed == {0, 2}, within_s=5.0, what="tailing partitions 0 and 2")
        assert not any(record.partition == 1 for record in received)
    finally:
        await reader.stop()


async def test_recent_stories_replay_from_memory_and_older_ones_from_kafka(topic: Settings) -> None:
    job_id = job_in(1)
    await publish(topic, [token(job_id, index) for index in range(20)])
    reader = KafkaLogReader(topic.model_copy(update={"bridge_recent_records": 5}))
    await reader.start(lambda record: None)
    try:
        boundary = await reader.routed_from(1)
        assert boundary == 20
        # Memory holds the last 5: a replay from there needs no consumer of its own (all taken away here).
        consumers = reader.replays.drain()
        try:
            recent = [record.offset async for record in reader.replay(job_id, 1, 15, boundary, "tenant")]
            assert recent == [15, 16, 17, 18, 19]
        finally:
            for consumer in consumers:
                reader.replays.add(consumer)
        # From the start it is older than memory: read with a replay consumer.
        whole = [record.offset async for record in reader.replay(job_id, 1, 0, boundary, "tenant")]
        assert whole == list(range(20))
        assert reader.replays.held("tenant") == 0
    finally:
        await reader.stop()


async def test_a_replay_from_before_retention_is_expired(topic: Settings) -> None:
    job_id = job_in(2)
    await publish(topic, [token(job_id, 0)])
    admin = AIOKafkaAdminClient(bootstrap_servers=topic.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic.events_topic, 2): RecordsToDelete(before_offset=1)})
    finally:
        await admin.close()
    reader = KafkaLogReader(topic.model_copy(update={"bridge_recent_records": 0}))
    await reader.start(lambda record: None)
    try:
        with pytest.raises(LogExpired):
            _ = [record async for record in reader.replay(job_id, 2, 0, 1, "tenant")]
    finally:
        await reader.stop()
