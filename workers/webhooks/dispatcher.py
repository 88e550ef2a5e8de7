"""The dispatcher: reads the events topic in a consumer group of its own and, for each terminal job event,
starts a delivery workflow per endpoint of the job's tenant. Its id is fixed by the job, the ending and the
endpoint (and a finished one may not run again), so a record read twice (a crash before the commit, a
rebalance) starts nothing twice: delivery is at least once to Temporal, exactly once from it. It runs beside
the job workflows, never in them: a job's end is not delayed by its webhooks."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from jobstream.connections import kafka_options
from jobstream.event_log import readable_event
from jobstream.search_attributes import JOB_TENANT
from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobEvent
from jobstream.webhook_endpoints import endpoints_of
from jobstream.webhook_events import (
    DELIVERY_QUEUE,
    DELIVERY_WORKFLOW,
    delivery_of,
    delivery_workflow_id,
    event_type_of,
)

GROUP = "jobstream-webhooks"
RESTART_S = 2.0
log = logging.getLogger(__name__)


async def tenant_of(client: Client, job_id: str) -> str | None:
    try:
        description = await client.get_workflow_handle(job_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description.typed_search_attributes.get(JOB_TENANT)


async def dispatch(client: Client, settings: Settings, event: JobEvent) -> int:
    """Starts the deliveries of `event` (none unless it ends a job); how many were new."""
    started = 0
    tenant = await tenant_of(client, event.job_id) if event_type_of(event) else None
    for endpoint_id in endpoints_of(settings, tenant) if tenant else {}:
        delivery = delivery_of(event, endpoint_id)
        assert delivery is not None
        try:
            await client.start_workflow(
                DELIVERY_WORKFLOW,
                delivery,
                id=delivery_workflow_id(delivery),
                task_queue=DELIVERY_QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            started += 1
        except WorkflowAlreadyStartedError:
            pass
    return started


async def run_dispatcher(client: Client, settings: Settings) -> None:
    """Until cancelled: every terminal event on the topic from the group's last commit (a new group: from now).
    A failure (Kafka or Temporal away) restarts the consumer from its last commit: nothing is skipped."""
    while True:
        try:
            await _consume(client, settings)
        except Exception:
            log.exception("webhook dispatcher: restarting from the last commit")
            await asyncio.sleep(RESTART_S)


async def _consume(client: Client, settings: Settings) -> None:
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        **kafka_options(settings),
        group_id=GROUP,
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    event = readable_event(record.value) if record.value is not None else None
                    if event is not None:
                        await dispatch(client, settings, event)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
