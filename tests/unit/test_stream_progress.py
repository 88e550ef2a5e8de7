"""What a bridge stream records per write: its replay (counted once per stream) and the spans of its first
token and the job's end, parented on the records' producers."""

from __future__ import annotations

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import set_span_in_context
from prometheus_client import REGISTRY

from jobstream import cursors, tracing
from jobstream.delivery import Delivery
from jobstream.event_log import LogLocator
from jobstream.v1.event_pb2 import JobEvent
from sse_bridge.stream_progress import StreamProgress

JOB = "job_" + "a" * 26


def delivery(event_id: str, kind: str, tail: bool, headers: list[tuple[str, bytes]] | None = None) -> Delivery:
    return Delivery(JobEvent(job_id=JOB, id=event_id, type=kind), LogLocator(0, 1) if tail else None, headers)


def counted(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_stream_that_replays_counts_one_replay_and_each_replayed_event() -> None:
    replays, events = counted("jobstream_sse_replays_total"), counted("jobstream_sse_replayed_events_total")
    progress = StreamProgress(JOB)
    progress.count([delivery(cursors.job_started(), "job.started", tail=False)])
    progress.count([delivery("002.2.0000000", "token", tail=False), delivery("002.2.0000001", "token", tail=True)])
    progress.count([delivery("002.2.0000002", "token", tail=True)])
    assert counted("jobstream_sse_replays_total") - replays == 1
    assert counted("jobstream_sse_replayed_events_total") - events == 2
    assert not progress.replaying


def test_a_stream_from_the_live_tail_replays_nothing() -> None:
    replays = counted("jobstream_sse_replays_total")
    progress = StreamProgress(JOB)
    progress.count([delivery(cursors.job_started(), "job.started", tail=True)])
    assert counted("jobstream_sse_replays_total") == replays


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> tuple[InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer("test"))
    return exporter, provider


def test_the_first_token_and_the_jobs_end_get_one_span_each(
    spans: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    exporter, provider = spans
    producer = provider.get_tracer("test").start_span("kafka.produce")
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=set_span_in_context(producer))
    traced = [(name, value.encode()) for name, value in carrier.items()]
    progress = StreamProgress(JOB)
    writes = [
        [delivery(cursors.job_started(), "job.started", tail=True)],
        [delivery("002.2.0000000", "token", tail=True, headers=traced), delivery("002.2.0000001", "token", True)],
        [delivery("002.2.0000002", "token", tail=True)],
        [delivery("002.9.0000000", "stage.completed", tail=True), delivery(cursors.terminal(), "job.completed", True)],
    ]
    for batch in writes:
        span = progress.milestone(batch)
        if span is not None:
            span.end()
    finished = exporter.get_finished_spans()
    assert [span.name for span in finished] == ["sse.deliver first token", "sse.deliver job end"]
    first = finished[0]
    assert first.parent is not None
    assert first.parent.span_id == producer.get_span_context().span_id
    assert first.attributes is not None
    assert first.attributes["jobstream.event_id"] == "002.2.0000000"
    assert first.attributes["jobstream.job_id"] == JOB
    assert finished[1].parent is None  # its record carried no traceparent
