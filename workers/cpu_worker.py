"""CPU worker process: the pipeline workflow, preprocess/postprocess, and event publishing."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.worker import Worker

from jobstream import untrusted_text
from jobstream.event_log import EventLog
from jobstream.payload_store import PayloadStore
from jobstream.pipelines import CPU_QUEUE
from jobstream.settings import get_settings
from jobstream.temporal_client import WORKFLOW_QUEUE, connect, metrics_runtime
from jobstream.webhook_events import DELIVERY_QUEUE
from workers.pipeline.activities.publish import EventActivities
from workers.pipeline.activities.text import TextActivities
from workers.webhooks.delivery import Deliveries
from workers.webhooks.delivery_workflow import WebhookDeliveryWorkflow
from workers.webhooks.dispatcher import run_dispatcher
from workers.worker_process import run_workers, start_process, worker_options, workflow_runner
from workers.workflow_types import JOB_WORKFLOWS, refuse_if_unserved


async def main() -> None:
    settings = get_settings()
    start_process("cpu-worker", settings)
    store = PayloadStore(settings)
    event_log = EventLog(settings)
    await event_log.start()
    text = TextActivities(store, settings.payload_threshold_bytes, settings.max_input_bytes)
    untrusted_text.prepare()
    events = EventActivities(event_log, store, text)
    deliveries = Deliveries(settings)

    def make(client: Client) -> list[Worker]:
        return [
            # The workflow's local activities (event publishing, local CPU stages) run beside it.
            Worker(
                client,
                task_queue=WORKFLOW_QUEUE,
                # The legacy type only finishes the jobs it started (and keeps their histories replayable).
                workflows=list(JOB_WORKFLOWS.values()),
                activities=[events.publish_event, events.publish_events, events.run_local_stage],
                workflow_runner=workflow_runner(),
            ),
            Worker(
                client,
                task_queue=CPU_QUEUE,
                activities=[text.preprocess, text.postprocess],
                **worker_options(),
            ),
            # Webhooks: their own queue, so that a backlog of deliveries never delays a job's workflow.
            Worker(
                client,
                task_queue=DELIVERY_QUEUE,
                workflows=[WebhookDeliveryWorkflow],
                activities=[deliveries.deliver],
                workflow_runner=workflow_runner(),
            ),
        ]

    try:
        client = await connect(settings, metrics_runtime(settings, settings.cpu_worker_metrics_port))
        await refuse_if_unserved(client, JOB_WORKFLOWS)
        await run_workers("cpu-worker", client, make, beside=lambda c: run_dispatcher(c, settings))
    finally:
        await event_log.stop()


if __name__ == "__main__":
    asyncio.run(main())
