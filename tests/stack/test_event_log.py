"""The event log's producer is replaced after an error Kafka calls non-retriable (aio-libs/aiokafka#1017: an
idempotent producer can be left failing every send after an outage), against the real broker: a topic that
refuses large records makes the broker answer one send with such an error; the next send goes through a new
producer."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from jobstream import cursors
from jobstream.event_log import EventLog
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent, TokenEvent


async def test_a_producer_that_meets_a_non_retriable_error_is_replaced(stack: Settings) -> None:
    topic = f"renewal-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        small = NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs={"max.message.bytes": "2000"})
        await admin.create_topics([small])
    finally:
        await admin.close()
    log = EventLog(stack.model_copy(update={"events_topic": topic}))
    await log.start()
    job = "job_" + "r" * 26
    try:
        too_large = JobEvent(id=cursors.token(1, 0), job_id=job, type="token", token=TokenEvent(text="x" * 10_000))
        with pytest.raises(KafkaError) as refused:
            await log.publish(too_large)  # the broker's answer, not the client's: under the client's own limit
        assert not refused.value.retriable
        for _ in range(50):
            if log.renewals:
                break
            await asyncio.sleep(0.1)
        assert log.renewals == 1
        fine = JobEvent(id=cursors.token(1, 1), job_id=job, type="token", token=TokenEvent(text="y"))
        located = await log.publish(fine)
        assert located.partition == 0
        assert log.renewals == 1
    finally:
        await log.stop()
