"""Where a model stage's tokens go: the job's events on the events topic, never through Temporal.

The stage's first token (over all its attempts) is published and its place awaited: that is where a retried
attempt reads the delivered prefix back from, so it is reported (heartbeated) at once. Every later token is
sent without waiting and tracked until Kafka acknowledges it: a send Kafka refused fails the attempt at the next
token (its retry resumes after the acknowledged prefix), every send is acknowledged before the stage completes,
and a cancelled stage gives its sends a moment to land, since what Kafka acknowledges is what clients got."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.trace import SpanKind

from jobstream import cursors, tracing
from jobstream.event_log import LogLocator
from jobstream.event_types import EventType
from jobstream.tracing import RecordHeaders
from jobstream.v1.event_pb2 import JobEvent, TokenEvent
from jobstream.workflow_io import StageInput
from workers.pipeline.activities.model.metrics import ModelMetrics

# How long a cancelled attempt waits for Kafka to acknowledge the tokens it already sent.
CANCEL_FLUSH_S = 2.0


class TokenLog(Protocol):
    """What the sink needs of jobstream.event_log.EventLog."""

    async def publish(self, event: JobEvent) -> LogLocator: ...

    async def send(self, event: JobEvent, headers: RecordHeaders | None = None) -> Any: ...


def token_event(stage: StageInput, index: int, text: str) -> JobEvent:
    # From time_ns: Timestamp.GetCurrentTime goes through a datetime, a few µs of every token.
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return JobEvent(
        id=cursors.token(stage.stage_index, index),
        job_id=stage.job_id,
        type=EventType.TOKEN,
        time=Timestamp(seconds=seconds, nanos=nanos),
        token=TokenEvent(index=index, text=text, stage=stage.stage.name),
    )


class TokenSink:
    def __init__(
        self,
        event_log: TokenLog,
        stage: StageInput,
        metrics: ModelMetrics,
        first: LogLocator | None,
        on_first: Callable[[LogLocator], None],
    ) -> None:
        self.event_log = event_log
        self.stage = stage
        self.metrics = metrics
        self.first = first  # where the stage's first token is in the log, once known
        self.on_first = on_first
        self.pending: list[asyncio.Future[Any]] = []

    async def put(self, index: int, text: str, headers: RecordHeaders | None) -> None:
        event = token_event(self.stage, index, text)
        if self.first is None:
            with tracing.tracer().start_as_current_span("kafka.produce", kind=SpanKind.PRODUCER):
                self.first = await self.metrics.produced(self.event_log.publish(event))
            self.on_first(self.first)
            return
        self.pending = unacknowledged(self.pending)
        self.pending.append(self.metrics.acknowledged(await self.event_log.send(event, headers)))

    async def drain(self) -> None:
        """Every token acknowledged by Kafka (raises the error of one it refused)."""
        await asyncio.gather(*self.pending)

    async def flush(self, timeout_s: float = CANCEL_FLUSH_S) -> None:
        """Cancelled: what Kafka acknowledges within `timeout_s` is what the clients got."""
        if self.pending:
            await asyncio.wait(self.pending, timeout=timeout_s)
        self.abandon()

    def abandon(self) -> None:
        """The attempt failed: its other sends' outcomes no longer matter (and must not be logged as lost)."""
        for send in self.pending:
            send.add_done_callback(_retrieve)


def unacknowledged(sends: list[asyncio.Future[Any]]) -> list[asyncio.Future[Any]]:
    """The sends Kafka has not acknowledged yet; raises the error of one that failed."""
    waiting = []
    for send in sends:
        if not send.done():
            waiting.append(send)
        elif (error := send.exception()) is not None:
            raise error
    return waiting


def _retrieve(send: asyncio.Future[Any]) -> None:
    if not send.cancelled():
        send.exception()
