"""The bridge's Prometheus metrics, served at /metrics on its own HTTP port (with the process's own: CPU,
memory, open file descriptors). Recorded per write, not per event per stream, so they cost the streams
little."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from jobstream.kafka_reader import KafkaLogReader

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OPEN_STREAMS = Gauge("jobstream_sse_open_streams", "SSE streams open now.")
EVENTS_DELIVERED = Counter("jobstream_sse_events_delivered", "Events written to SSE streams (each stream's own).")
WRITES = Counter("jobstream_sse_writes", "Writes to SSE streams; each carries every event its stream had pending.")
DELIVERY_LAG = Histogram(
    "jobstream_sse_delivery_lag_seconds",
    "From an event's timestamp (a token's: the GPU worker's, as Triton handed it over) to the write that sends it; "
    "observed for the first event of each write that carries live events (replays are late by design).",
    buckets=LAG_BUCKETS,
)
TAIL_DELAY = Histogram(
    "jobstream_sse_tail_delay_seconds",
    "From an event's timestamp to the bridge's Kafka tail handing its record to the hub (the log's part of "
    "jobstream_sse_delivery_lag_seconds: producer, broker, fetch); observed with it.",
    buckets=LAG_BUCKETS,
)
REPLAYS = Counter(
    "jobstream_sse_replays",
    "Streams that began with events already in the log (a reconnect with Last-Event-ID, a late viewer), "
    "read by one of the replay consumers or rebuilt from a finished job's state.",
)
REPLAYED_EVENTS = Counter("jobstream_sse_replayed_events", "Events those streams replayed before the live tail.")
SLOW_CLIENTS_CUT = Counter(
    "jobstream_sse_slow_clients_cut",
    "Streams cut off because their client stopped reading, by why: a write blocked past the send timeout, or the "
    "watcher's queue full.",
    ["reason"],
)


class _Tail(Collector):
    """The bridge's one Kafka tail consumer: how far it lags the log per partition, which partitions it reads
    and how many records it has read (a replica's ingest, which falls as 1/R with R replicas)."""

    reader: KafkaLogReader | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        lag = GaugeMetricFamily(
            "jobstream_sse_tail_lag_records",
            "Records the bridge's Kafka tail consumer has not read yet (end offset - position), per partition.",
            labels=["partition"],
        )
        tailed = GaugeMetricFamily(
            "jobstream_sse_tailed_partitions",
            "Partitions of the events topic the bridge's tail reads: the ones it owns, and others while its "
            "clients need them.",
        )
        read = CounterMetricFamily("jobstream_sse_tail_records_read", "Records the bridge's tail has read.")
        if self.reader is not None:
            for partition, behind in sorted(self.reader.lag().items()):
                lag.add_metric([str(partition)], behind)
            tailed.add_metric([], len(self.reader.tailed))
            read.add_metric([], self.reader.records_read)
        yield lag
        yield tailed
        yield read


TAIL = _Tail()
REGISTRY.register(TAIL)
