"""What one SSE stream has written so far, for the bridge's metrics (events, writes, delivery lag, replays) and
its trace's milestones (the write with the first token, the one with the job's end)."""

from __future__ import annotations

import time

from opentelemetry.trace import Span, SpanKind

from jobstream import tracing
from jobstream.delivery import Delivery
from jobstream.event_types import TERMINAL_TYPES, EventType
from jobstream.logs import JOB_ID_ATTRIBUTE
from sse_bridge import metrics


class StreamProgress:
    """What one stream has written so far, for its metrics and its trace's milestones: not per event, but
    per write, and only until the replay (and the first token) are behind it."""

    __slots__ = ("first_token", "job_id", "replayed", "replaying")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.replaying = True  # until a write carries an event from the live tail
        self.replayed = False
        self.first_token = False

    def count(self, batch: list[Delivery]) -> None:
        metrics.EVENTS_DELIVERED.inc(len(batch))
        metrics.WRITES.inc()
        first = batch[0]
        stamp = first.event.time
        # Live events only: a replayed one is late by design (the stream began after it), and its lag would
        # hide the delivery lag of everyone else.
        if first.routed_at and stamp.seconds:
            stamped = stamp.ToNanoseconds() / 1e9
            metrics.DELIVERY_LAG.observe(max(0.0, time.time() - stamped))
            metrics.TAIL_DELAY.observe(max(0.0, first.routed_at - stamped))
        if self.replaying:
            # Replayed (or rebuilt from the job's state) events carry no tail position; once one from the
            # tail comes, every later one does.
            replayed = sum(1 for delivery in batch if delivery.locator is None)
            if replayed:
                metrics.REPLAYED_EVENTS.inc(replayed)
                if not self.replayed:
                    metrics.REPLAYS.inc()
                self.replayed = True
            self.replaying = replayed == len(batch)

    def milestone(self, batch: list[Delivery]) -> Span | None:
        """A span, parented on the record's producer, for the write that carries the stream's first token or
        the job's end (the last event of a stream's last write)."""
        last = batch[-1]
        if last.event.type in TERMINAL_TYPES:
            return _delivery_span("sse.deliver job end", self.job_id, last)
        if not self.first_token:
            for delivery in batch:
                if delivery.event.type == EventType.TOKEN:
                    self.first_token = True
                    return _delivery_span("sse.deliver first token", self.job_id, delivery)
        return None


def _delivery_span(name: str, job_id: str, delivery: Delivery) -> Span:
    return tracing.tracer().start_span(
        name,
        context=tracing.context_from_headers(delivery.headers),
        kind=SpanKind.CONSUMER,
        attributes={JOB_ID_ATTRIBUTE: job_id, "jobstream.event_id": delivery.event.id},
    )
