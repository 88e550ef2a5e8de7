"""One delivery attempt: the event's fixed body, signed for this attempt's timestamp (Standard Webhooks, with the
`standardwebhooks` package), POSTed without following redirects to the endpoint, if its URL is still safe."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook
from temporalio import activity

from jobstream.settings import Settings
from jobstream.webhook_endpoints import UnsafeUrl, check_url, pinned, read_endpoints
from jobstream.webhook_events import DeliveryAttempt, WebhookDeliveryInput

TIMEOUT_S = 15.0
MAX_RETRY_AFTER_S = 24 * 3600.0
GONE = 410


def retry_after(value: str | None) -> float:
    """The endpoint's Retry-After in seconds, at most a day (an HTTP date, or nonsense: the schedule decides)."""
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return min(seconds, MAX_RETRY_AFTER_S) if math.isfinite(seconds) and seconds > 0 else 0.0


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
            address = await asyncio.to_thread(check_url, endpoint.url, self.settings.webhooks_allow_private)
        except UnsafeUrl as exc:
            return DeliveryAttempt(status=0, stop=str(exc))
        headers = signed_headers(delivery, endpoint.secret, datetime.now(UTC))
        host = urlsplit(endpoint.url).hostname  # never the whole URL in a log: it may carry a token
        url, extensions = endpoint.url, {}
        if address is not None:  # connect to the address that was checked, TLS still verifying the name
            url, headers["host"] = pinned(endpoint.url, address)
            extensions = {"sni_hostname": host or ""}
        try:
            async with asyncio.timeout(TIMEOUT_S), httpx.AsyncClient(follow_redirects=False) as http:
                body = delivery.body.encode()
                reply = await http.post(url, content=body, headers=headers, extensions=extensions)
        except Exception as exc:  # any failure to get an answer is an attempt without one, retried on schedule
            activity.logger.info("webhook %s: no answer from %s: %s", delivery.message_id, host, type(exc).__name__)
            return DeliveryAttempt(status=0)
        stop = "the endpoint answered 410 Gone" if reply.status_code == GONE else ""
        return DeliveryAttempt(
            status=reply.status_code, retry_after_s=retry_after(reply.headers.get("retry-after")), stop=stop
        )
