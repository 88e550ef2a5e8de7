"""One delivery attempt: the event's fixed body, signed for this attempt's timestamp (Standard Webhooks, with the
`standardwebhooks` package), POSTed without following redirects to the endpoint, if its URL is still safe."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook
from temporalio import activity

from jobstream.settings import Settings
from jobstream.webhook_endpoints import UnsafeUrl, check_url, read_endpoints
from jobstream.webhook_events import DeliveryAttempt, WebhookDeliveryInput

TIMEOUT_S = 15.0
GONE = 410


def retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:  # an HTTP date: the schedule decides instead
        return 0.0


def signed_headers(delivery: WebhookDeliveryInput, secret: str, now: datetime) -> dict[str, str]:
    """The attempt's Standard Webhooks headers: its id (the same on every attempt), time, and signature of both
    with the body."""
    at = now.replace(microsecond=0)
    return {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.message_id, at, delivery.body),
    }


class Deliveries:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="deliver_webhook")
    async def deliver(self, delivery: WebhookDeliveryInput) -> DeliveryAttempt:
        endpoint = read_endpoints(self.settings).endpoints.get(delivery.endpoint_id)
        if endpoint is None:
            return DeliveryAttempt(status=0, stop="the endpoint was removed")
        try:
            check_url(endpoint.url, self.settings.webhooks_allow_private)
        except UnsafeUrl as exc:
            return DeliveryAttempt(status=0, stop=str(exc))
        headers = signed_headers(delivery, endpoint.secret, datetime.now(UTC))
        try:
            async with httpx.AsyncClient(follow_redirects=False, timeout=TIMEOUT_S) as http:
                reply = await http.post(endpoint.url, content=delivery.body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            activity.logger.info("webhook %s: %s unreachable: %r", delivery.message_id, endpoint.url, exc)
            return DeliveryAttempt(status=0)
        stop = "the endpoint answered 410 Gone" if reply.status_code == GONE else ""
        return DeliveryAttempt(
            status=reply.status_code, retry_after_s=retry_after(reply.headers.get("retry-after")), stop=stop
        )
