"""OpenTelemetry traces, off until configured with the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns them on, exported over OTLP/HTTP; `OTEL_SERVICE_NAME` overrides
the process's own name; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps them off.

One job is one trace: the JobService's SubmitJob span, the workflow and its activities (Temporal headers carry
the context), the model's Triton call, and the Kafka records, which carry a W3C `traceparent` header so that
the bridge parents its spans for a stream's first token and its end on the producer's."""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

TRACER_NAME = "jobstream"
# Kafka record headers: (name, value) pairs, as aiokafka takes and gives them.
RecordHeaders = Sequence[tuple[str, bytes]]

_provider: TracerProvider | None = None


def configured() -> bool:
    """Whether the environment asks for traces."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def start_tracing(service: str) -> bool:
    """Install the exporting tracer provider when configured (once per process); whether traces are on."""
    global _provider
    if _provider is not None:
        return True
    if not configured():
        return False
    # Imported here: a process without traces never loads the exporter (or `requests` under it).
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create; the role is the default.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"jobstream-{service}"}
    _provider = TracerProvider(resource=Resource.create(attributes))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    return True


def enabled() -> bool:
    return _provider is not None


def stop_tracing() -> None:
    """Export what is still buffered (a stopping process's last spans)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def record_headers() -> list[tuple[str, bytes]] | None:
    """The current span's context as Kafka record headers, or None when there is none (traces off)."""
    if _provider is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()] or None


def context_from_headers(headers: RecordHeaders | None) -> Context | None:
    """The producer's context carried by a record's headers, or None when it carries none."""
    if not headers:
        return None
    carrier = {name: value.decode(errors="replace") for name, value in headers if name == "traceparent"}
    if not carrier:
        return None
    carrier.update({name: value.decode(errors="replace") for name, value in headers if name == "tracestate"})
    return propagate.extract(carrier)
