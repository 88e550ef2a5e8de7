"""Traces are off until the standard variables ask for them; Kafka headers carry a W3C traceparent."""

from __future__ import annotations

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import get_current_span, set_span_in_context

from jobstream import tracing


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_traces_are_on_only_when_an_endpoint_is_configured(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.configured() is expected


def test_records_carry_no_headers_while_traces_are_off() -> None:
    assert not tracing.enabled()
    assert tracing.record_headers() is None
    assert tracing.start_tracing("test") is False


def test_a_records_traceparent_gives_back_the_producers_context() -> None:
    span = TracerProvider().get_tracer("test").start_span("produce")
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=set_span_in_context(span))
    headers = [("other", b"x"), *((name, value.encode()) for name, value in carrier.items())]
    context = tracing.context_from_headers(headers)
    assert context is not None
    extracted = get_current_span(context).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.span_id == span.get_span_context().span_id
    assert extracted.is_remote


@pytest.mark.parametrize("headers", [None, [], [("other", b"x")]])
def test_a_record_without_traceparent_has_no_context(headers: list[tuple[str, bytes]] | None) -> None:
    assert tracing.context_from_headers(headers) is None
