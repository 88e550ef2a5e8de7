"""One-time resources the services expect: the payload bucket and the events topic (both idempotent)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from jobstream.payload_store import PayloadStore
from jobstream.search_attributes import SEARCH_ATTRIBUTE_TYPES
from jobstream.settings import Settings, get_settings
from jobstream.stream_tokens import signing_secret


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


async def register_search_attributes(settings: Settings, timeout_s: float = 120.0) -> None:
    """Register jobstream's search attributes in the namespace (the local dev server gets them as flags).

    Retried: a fresh Temporal answers health checks before its namespace is visible to every service.
    """
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            listed = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=settings.temporal_namespace)
            )
            missing = {
                name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
                for name, kind in SEARCH_ATTRIBUTE_TYPES.items()
                if name not in listed.custom_attributes
            }
            if missing:
                await client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(namespace=settings.temporal_namespace, search_attributes=missing)
                )
            return
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1.0)


async def provision_all(settings: Settings) -> None:
    """Everything a fresh stack of separate servers needs (docker-compose). No API key: a deployment's keys
    are made by its operator (`jobstream keys add TENANT`), never a development key anyone could know."""
    await provision(settings)
    await register_search_attributes(settings)
    # The SSE bridge and the JobService must sign and verify with one secret; with none configured, make the
    # shared file now rather than let two processes race to create it.
    signing_secret(settings)


def main() -> None:
    """`python -m devstack.provision`."""
    asyncio.run(provision_all(get_settings()))
    print("jobstream provisioned; add a tenant's API key with `jobstream keys add TENANT`", flush=True)


if __name__ == "__main__":
    main()
