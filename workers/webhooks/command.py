"""`jobstream webhooks`: manage the tenants' endpoints (run where the CPU workers read the state directory) and
look at deliveries: `add TENANT URL` (prints the endpoint's id and its `whsec_` secret, once), `list`, `remove
ID`, `deliveries [--job JOB_ID]`, `redeliver DELIVERY_ID` (the same body and webhook-id again, as a new delivery)."""

from __future__ import annotations

import argparse
import asyncio
import time

from temporalio.common import WorkflowIDReusePolicy

from jobstream.settings import get_settings
from jobstream.subcommands import Subcommand
from jobstream.temporal_client import connect
from jobstream.webhook_endpoints import UnsafeUrl, add_endpoint, read_endpoints, remove_endpoint
from jobstream.webhook_events import DELIVERY_QUEUE, DELIVERY_WORKFLOW, WebhookDeliveryInput


def _configure(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="webhooks_command", required=True)
    add = commands.add_parser("add", help="register URL for TENANT's terminal jobs; prints its id and secret once")
    add.add_argument("tenant")
    add.add_argument("url")
    commands.add_parser("list", help="the endpoints (never their secrets)").add_argument("--tenant", default="")
    commands.add_parser("remove", help="remove an endpoint (its pending deliveries stop)").add_argument("endpoint_id")
    deliveries = commands.add_parser("deliveries", help="recent deliveries: their state, attempts and last status")
    deliveries.add_argument("--job", default="", help="only this job's")
    commands.add_parser("redeliver", help="deliver one again (same body, same webhook-id)").add_argument("delivery_id")


async def _deliveries(job_id: str) -> int:
    client = await connect(get_settings())
    query = f"WorkflowType = '{DELIVERY_WORKFLOW}'" + (
        f" AND WorkflowId STARTS_WITH 'webhook-{job_id}-'" if job_id else ""
    )
    async for execution in client.list_workflows(query, limit=100):
        memo = await execution.memo()
        state = execution.status.name if execution.status else "?"
        print(
            f"{execution.id}  {state}  attempts={memo.get('attempts', 0)}  last_status={memo.get('last_status', '-')}"
            f"  {memo.get('outcome', '')}"
        )
    return 0


async def _redeliver(delivery_id: str) -> int:
    client = await connect(get_settings())
    history = await client.get_workflow_handle(delivery_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (delivery,) = await client.data_converter.decode(started.input.payloads, [WebhookDeliveryInput])
    again = f"{delivery_id}-redelivery-{int(time.time())}"
    await client.start_workflow(
        DELIVERY_WORKFLOW,
        delivery,
        id=again,
        task_queue=DELIVERY_QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    print(again)
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    match args.webhooks_command:
        case "add":
            try:
                endpoint_id, secret = add_endpoint(settings, args.tenant, args.url)
            except UnsafeUrl as exc:
                raise SystemExit(
                    f"jobstream webhooks add: {exc} (JOBSTREAM_WEBHOOKS_ALLOW_PRIVATE allows it)"
                ) from None
            print(f"{endpoint_id} {secret}")
        case "list":
            for endpoint_id, endpoint in read_endpoints(settings).endpoints.items():
                if not args.tenant or endpoint.tenant == args.tenant:
                    print(f"{endpoint_id}  {endpoint.tenant}  {endpoint.url}")
        case "remove":
            if not remove_endpoint(settings, args.endpoint_id):
                raise SystemExit(f"jobstream webhooks remove: no endpoint {args.endpoint_id}")
        case "deliveries":
            return asyncio.run(_deliveries(args.job))
        case "redeliver":
            return asyncio.run(_redeliver(args.delivery_id))
    return 0


webhooks = Subcommand("webhooks on terminal jobs: endpoints and deliveries", _configure, _run)
