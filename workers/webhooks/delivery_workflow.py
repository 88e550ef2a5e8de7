"""A webhook's delivery to one endpoint, retried on Standard Webhooks' schedule for about three days: at once,
then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 24 h and 24 h (or later, if the endpoint's `Retry-After`
asks). It ends at the first 2xx, at a 410 (the endpoint is gone), or when the endpoint is removed or its URL is
no longer safe. Its memo says how it stands, for `jobstream webhooks deliveries`."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from jobstream.webhook_events import DELIVERY_WORKFLOW, DeliveryAttempt, WebhookDeliveryInput

SCHEDULE = [
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
    timedelta(hours=24),
    timedelta(hours=24),
]
# A worker lost mid-attempt: the attempt is made again soon; the schedule is for the endpoint's answers.
ATTEMPT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


def outcome_of(attempt: DeliveryAttempt) -> str:
    if 200 <= attempt.status < 300:
        return "delivered"
    if attempt.stop:
        return f"stopped: {attempt.stop}"
    return "retrying"


def wait_after(number: int, attempt: DeliveryAttempt) -> timedelta | None:
    """How long to wait after attempt `number` (1-based) before the next: the schedule's, or the endpoint's
    Retry-After when it asks for longer; None when the schedule is spent."""
    if number >= len(SCHEDULE):
        return None
    return max(SCHEDULE[number], timedelta(seconds=attempt.retry_after_s))


@workflow.defn(name=DELIVERY_WORKFLOW)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, delivery: WebhookDeliveryInput) -> str:
        number = 1
        while True:
            try:
                attempt: DeliveryAttempt = await workflow.execute_activity(
                    "deliver_webhook",
                    delivery,
                    result_type=DeliveryAttempt,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=ATTEMPT_RETRY,
                )
            except ActivityError:  # the attempt itself failed (a worker lost, a bug): one more on the schedule
                attempt = DeliveryAttempt(status=0)
            outcome = outcome_of(attempt)
            workflow.upsert_memo({"attempts": number, "last_status": attempt.status, "outcome": outcome})
            if outcome != "retrying":
                return outcome
            wait = wait_after(number, attempt)
            if wait is None:
                return "failed: no 2xx in about three days"
            await workflow.sleep(wait)
            number += 1
