"""The one event log: every job's events, in order, on one Kafka topic keyed by job id.

Workers write `JobEvent` protobufs here; the SSE bridge and `WatchJob` read them back and render the same
events (SSE `id:` / `event:` / JSON `data:`, or the protobuf itself).
"""

from __future__ import annotations

import json
import logging
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from jobstream import cursors, tracing
from jobstream.connections import kafka_options
from jobstream.settings import Settings
from jobstream.tracing import RecordHeaders
from jobstream.v1.event_pb2 import JobEvent

TERMINAL_TYPES = frozenset({"job.completed", "job.failed", "job.cancelled"})
log = logging.getLogger(__name__)


class LogLocator(NamedTuple):
    """Where an event is in the log. A tuple, so it crosses Temporal as `[partition, offset]`."""

    partition: int
    offset: int


class EventLog:
    """An idempotent, acks=all producer: a retried send never duplicates and an ack means replicated."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.events_topic
        self._producer = AIOKafkaProducer(
            **kafka_options(settings),
            enable_idempotence=True,
            acks="all",
            # Tokens are tiny and latency-bound: send at once rather than waiting to fill a batch.
            linger_ms=0,
            request_timeout_ms=10_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, event: JobEvent) -> LogLocator:
        metadata = await (await self.send(event))
        return LogLocator(metadata.partition, metadata.offset)

    async def publish_all(self, events: list[JobEvent]) -> list[LogLocator]:
        """Publish several events in order and wait for every ack: one round trip, not one per event."""
        sends = [await self.send(event) for event in events]
        return [LogLocator(metadata.partition, metadata.offset) for metadata in [await sent for sent in sends]]

    async def send(self, event: JobEvent, headers: RecordHeaders | None = None) -> Any:
        """Enqueue without waiting for the ack; await the returned future to confirm delivery.

        The record carries `headers`, by default the current span's context (none while traces are off)."""
        return await self._producer.send(
            self.topic,
            event.SerializeToString(),
            key=event.job_id.encode(),
            headers=list(headers) if headers is not None else tracing.record_headers(),
        )


def event_data(event: JobEvent) -> dict[str, Any]:
    """The JSON body of an event: `job_id`, `type`, `time` and the payload's fields at the top level."""
    data: dict[str, Any] = {"job_id": event.job_id, "type": event.type}
    if event.HasField("time"):
        data["time"] = event.time.ToJsonString()
    which = event.WhichOneof("payload")
    if which:
        payload = json_format.MessageToDict(
            getattr(event, which), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        data.update(payload)
    return data


def event_json(event: JobEvent) -> str:
    return json.dumps(event_data(event), separators=(",", ":"), ensure_ascii=False)


def parse_event(value: bytes) -> JobEvent:
    event = JobEvent()
    event.ParseFromString(value)
    return event


def readable_event(value: bytes) -> JobEvent | None:
    """The record's event, or None (logged) for one that is not a JobEvent of ours: anyone who can write to
    the topic must not be able to stop the readers of every job."""
    try:
        event = parse_event(value)
    except DecodeError:
        log.warning("skipped a record that is not a JobEvent (%d bytes)", len(value))
        return None
    if not cursors.is_valid(event.id) or not event.job_id:
        log.warning("skipped a JobEvent without a valid id (%r)", event.id[:32])
        return None
    return event
