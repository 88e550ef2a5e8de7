"""Webhooks without servers: which URLs may be endpoints, the event each ending sends (the same bytes and id on
every attempt), its signature verified by the official openai SDK's `webhooks.unwrap()`, and the retry
schedule with Retry-After."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from openai import InvalidWebhookSignatureError, OpenAI
from openai.types.webhooks import ResponseCompletedWebhookEvent

from jobstream.settings import Settings
from jobstream.v1.event_pb2 import JobCompleted, JobEvent
from jobstream.webhook_endpoints import UnsafeUrl, add_endpoint, check_url, endpoints_of, pinned, remove_endpoint
from jobstream.webhook_events import DeliveryAttempt, delivery_of, delivery_workflow_id
from workers.webhooks.delivery import signed_headers
from workers.webhooks.delivery_workflow import SCHEDULE, outcome_of, wait_after

JOB = "job_" + "b" * 26


def completed(finish_reason: str = "stop") -> JobEvent:
    done = JobCompleted(result_text="x", finish_reason=finish_reason)
    return JobEvent(job_id=JOB, type="job.completed", time=Timestamp(seconds=1_800_000_000), job_completed=done)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/",
        "https://169.254.169.254/latest",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::7f00:1]/",
        "https://[2002:7f00:1::]/",
        "http://93.184.216.34/",
    ],
)
def test_loopback_private_link_local_and_plain_http_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)  # the local stack's setting takes them
    with pytest.raises(UnsafeUrl):
        check_url("https://93.184.216.34/\thook", allow_private=True)


def test_a_public_https_address_is_taken_and_pinned() -> None:
    address = check_url("https://93.184.216.34:8443/hook?x=1", allow_private=False)
    assert address == "93.184.216.34"
    assert pinned("https://hooks.example.com:8443/hook?x=1", address) == (
        "https://93.184.216.34:8443/hook?x=1",
        "hooks.example.com:8443",
    )
    assert pinned("https://hooks.example.com/h", "2606:2800::1") == ("https://[2606:2800::1]/h", "hooks.example.com")
    with pytest.raises(UnsafeUrl):
        check_url("ftp://93.184.216.34/", allow_private=True)


def test_endpoints_are_kept_per_tenant_with_a_whsec_secret(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, webhooks_allow_private=True)
    endpoint_id, secret = add_endpoint(settings, "acme", "http://127.0.0.1:9/hook")
    assert secret.startswith("whsec_")
    assert list(endpoints_of(settings, "acme")) == [endpoint_id]
    assert endpoints_of(settings, "other") == {}
    assert (tmp_path / "webhooks.json").stat().st_mode & 0o077 == 0
    assert remove_endpoint(settings, endpoint_id)
    assert endpoints_of(settings, "acme") == {}


def test_each_ending_is_one_event_in_openais_webhook_shape() -> None:
    delivery = delivery_of(completed(), "we_1")
    assert delivery is not None
    body = json.loads(delivery.body)
    assert body == {
        "id": delivery.message_id,
        "object": "event",
        "created_at": 1_800_000_000,
        "type": "response.completed",
        "data": {"id": "resp_" + "b" * 26, "job_id": JOB},
    }
    assert delivery_of(completed(), "we_1") == delivery  # the same bytes and webhook-id every time
    assert delivery_workflow_id(delivery) == f"webhook-{JOB}-response.completed-we_1"
    cut = delivery_of(completed("length"), "we_1")
    assert cut is not None
    assert cut.event_type == "response.incomplete"
    assert delivery_of(JobEvent(job_id=JOB, type="token"), "we_1") is None


def test_the_signature_verifies_with_the_official_sdk() -> None:
    delivery = delivery_of(completed(), "we_1")
    assert delivery is not None
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    now = datetime.now(UTC)
    headers = signed_headers(delivery, secret, now)
    event = OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(delivery.body, headers)
    assert isinstance(event, ResponseCompletedWebhookEvent)
    assert (event.id, event.data.id) == (delivery.message_id, "resp_" + "b" * 26)
    tampered = delivery.body.replace("completed", "cancelled")
    with pytest.raises(InvalidWebhookSignatureError):
        OpenAI(api_key="unused", webhook_secret=secret).webhooks.unwrap(tampered, headers)


def test_the_schedule_spans_about_three_days_and_honours_retry_after() -> None:
    total = sum(SCHEDULE, timedelta())
    assert timedelta(days=2.5) < total < timedelta(days=3.5)
    assert wait_after(1, DeliveryAttempt(status=500)) == SCHEDULE[1]
    assert wait_after(1, DeliveryAttempt(status=429, retry_after_s=60)) == timedelta(seconds=60)
    assert wait_after(len(SCHEDULE), DeliveryAttempt(status=500)) is None
    assert outcome_of(DeliveryAttempt(status=204)) == "delivered"
    assert outcome_of(DeliveryAttempt(status=410, stop="gone")) == "stopped: gone"
    assert outcome_of(DeliveryAttempt(status=302)) == "retrying"  # no redirects followed
