"""The one event log: every job's events, in order, on one Kafka topic keyed by job id.

Workers write `JobEvent` protobufs here; the SSE bridge and `WatchJob` read them back and render the same
events (SSE `id:` / `event:` / JSON `data:`, or the protobuf itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from jobstream import cursors, tracing
from jobstream.connections import kafka_options
from jobstream.event_types import EventType
from jobstream.settings import Settings
from jobstream.tracing import RecordHeaders
from jobstream.v1.event_pb2 import JobEvent

log = logging.getLogger(__name__)


class LogLocator(NamedTuple):
    """Where an event is in the log. A tuple, so it crosses Temporal as `[partition, offset]`."""

    partition: int
    offset: int


# How long a producer given up on may take to close before it is left to the collector.
RETIRE_TIMEOUT_S = 5.0


def idempotent_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka_options(settings),
        enable_idempotence=True,
        acks="all",
        # Tokens are tiny and latency-bound: send at once rather than waiting to fill a batch.
        linger_ms=0,
        request_timeout_ms=10_000,
    )


class EventLog:
    """An idempotent, acks=all producer: a retried send never duplicates and an ack means replicated.

    A producer that meets an error Kafka calls non-retriable (after an outage an idempotent producer can be
    left answering every send with OutOfOrderSequenceNumber until it is recreated: aio-libs/aiokafka#1017)
    is replaced by a new one; the send that met it fails, and its activity's retry goes through the new one.
    Exactly-once does not rest on the producer's idempotence: readers keep the first record of each event id.
    """

    def __init__(self, settings: Settings, make_producer: Callable[[], Any] | None = None) -> None:
        self.topic = settings.events_topic
        self._make_producer = make_producer or (lambda: idempotent_producer(settings))
        self._producer = self._make_producer()
        self._renewing: asyncio.Task[None] | None = None
        self.renewals = 0

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        if self._renewing is not None:
            await self._renewing
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
        if self._renewing is not None:
            await asyncio.shield(self._renewing)
        producer = self._producer
        try:
            sent = await producer.send(
                self.topic,
                event.SerializeToString(),
                key=event.job_id.encode(),
                headers=list(headers) if headers is not None else tracing.record_headers(),
            )
        except KafkaError as exc:
            self._renew_after(exc, producer)
            raise
        sent.add_done_callback(lambda done: self._renew_after(None if done.cancelled() else done.exception(), producer))
        return sent

    def _renew_after(self, error: BaseException | None, producer: Any) -> None:
        """Replace `producer` if `error` is one it cannot recover from (once, however many sends met it)."""
        if not isinstance(error, KafkaError) or error.retriable or producer is not self._producer:
            return
        if self._renewing is None:
            log.warning("the Kafka producer met %r: replacing it", error)
            self._renewing = asyncio.create_task(self._renew(producer))

    async def _renew(self, failed: Any) -> None:
        fresh = self._make_producer()
        try:
            await fresh.start()
        except Exception:
            # Kafka is away: the old producer stays, and the next send that fails this way tries again.
            log.warning("could not start a new Kafka producer", exc_info=True)
            self._renewing = None
            return
        self._producer = fresh
        self.renewals += 1
        self._renewing = None
        try:
            await asyncio.wait_for(failed.stop(), RETIRE_TIMEOUT_S)
        except Exception:  # it is being given up on: how it ends does not matter
            log.info("the replaced Kafka producer did not close cleanly", exc_info=True)


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


async def job_records(
    consumer: AIOKafkaConsumer, tp: TopicPartition, job_id: str, start: int, end: int, poll_ms: int = 500
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """One job's records in [start, end) of one partition, in order: the one read-back loop, shared by the
    fan-out's replay and a retried model stage. The caller has assigned `tp` to `consumer`."""
    key = job_id.encode()
    consumer.seek(tp, start)
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=poll_ms)
        for record in batch.get(tp, []):
            if record.offset >= end:
                return
            if record.key == key:
                yield record


async def delivered_tokens(settings: Settings, job_id: str, stage_index: int, first: LogLocator) -> list[str]:
    """The tokens a stage's earlier attempts published, read back from its first token's place in the log to
    the partition's end: only the gap-free prefix counts (the model regenerates anything after a gap)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    found: dict[int, str] = {}
    try:
        tp = TopicPartition(settings.events_topic, first.partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        async for record in job_records(consumer, tp, job_id, first.offset, end):
            event = readable_event(record.value) if record.value is not None else None
            if event is not None and event.type == EventType.TOKEN and cursors.is_token_of(event.id, stage_index):
                found.setdefault(event.token.index, event.token.text)
    finally:
        await consumer.stop()
    prefix: list[str] = []
    while len(prefix) in found:
        prefix.append(found[len(prefix)])
    return prefix
