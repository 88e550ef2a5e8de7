"""What a webhook delivers: one event per terminal job, in OpenAI's webhook shape so its SDKs' `webhooks.unwrap()`
reads it: `{"id", "object": "event", "created_at", "type", "data": {"id"}}`, the type the response's ending
(`response.completed`, `response.incomplete`, `response.failed`, `response.cancelled`) and `data.id` the
response's id (`resp_...`, the job's under another prefix; `data.job_id` names the job). Built once, by the
dispatcher, and carried unchanged in the delivery's workflow input: every attempt sends the same bytes."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from jobstream.event_types import EventType
from jobstream.v1.event_pb2 import JobEvent

DELIVERY_WORKFLOW = "WebhookDelivery"
DELIVERY_QUEUE = "jobstream-webhooks"


class WebhookDeliveryInput(BaseModel):
    """A delivery workflow's input: whose endpoint, which event, and the exact body every attempt sends."""

    endpoint_id: str
    message_id: str  # webhook-id: the same on every attempt, so the receiver can tell a retry
    event_type: str
    job_id: str
    body: str


class DeliveryAttempt(BaseModel):
    """What an endpoint answered one attempt: its HTTP status (0: no answer), how long it asked us to wait, and
    why there is no point retrying, if there is none."""

    status: int
    retry_after_s: float = 0.0
    stop: str = ""


def event_type_of(event: JobEvent) -> str | None:
    """The webhook event type a job event ends in, or None for an event that ends nothing."""
    match event.type:
        case EventType.JOB_COMPLETED:
            return "response.incomplete" if event.job_completed.finish_reason == "length" else "response.completed"
        case EventType.JOB_FAILED:
            return "response.failed"
        case EventType.JOB_CANCELLED:
            return "response.cancelled"
    return None


def delivery_of(event: JobEvent, endpoint_id: str) -> WebhookDeliveryInput | None:
    kind = event_type_of(event)
    if kind is None:
        return None
    message_id = "evt_" + hashlib.sha256(f"{event.job_id}/{kind}".encode()).hexdigest()[:24]
    suffix = event.job_id.removeprefix("job_")
    body = {
        "id": message_id,
        "object": "event",
        "created_at": event.time.seconds,
        "type": kind,
        "data": {"id": "resp_" + suffix, "job_id": event.job_id},
    }
    return WebhookDeliveryInput(
        endpoint_id=endpoint_id, message_id=message_id, event_type=kind, job_id=event.job_id, body=json.dumps(body)
    )


def delivery_workflow_id(delivery: WebhookDeliveryInput) -> str:
    """Fixed by the job, its ending and the endpoint: started twice, it still runs once."""
    return f"webhook-{delivery.job_id}-{delivery.event_type}-{delivery.endpoint_id}"
