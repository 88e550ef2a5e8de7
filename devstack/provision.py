"""One-time resources the services expect: the payload bucket and the events topic (both idempotent)."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from jobstream.payload_store import PayloadStore
from jobstream.settings import Settings


async def create_events_topic(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        if settings.events_topic in await admin.list_topics():
            return
        topic = NewTopic(settings.events_topic, settings.events_partitions, replication_factor=1)
        with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
            await admin.create_topics([topic])
    finally:
        await admin.close()


async def provision(settings: Settings) -> None:
    await create_events_topic(settings)
    await PayloadStore(settings).ensure_bucket()
