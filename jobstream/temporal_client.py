"""The one way jobstream connects to Temporal: pydantic payloads, large ones claim-checked into MinIO."""

from __future__ import annotations

from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from jobstream import tracing
from jobstream.connections import temporal_connect_options
from jobstream.payload_store import data_converter
from jobstream.settings import Settings

WORKFLOW_QUEUE = "jobstream-workflows"


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    # With traces on, the client's calls and the workers' workflows and activities get spans, and Temporal's
    # headers carry the context from the JobService's StartWorkflow to each activity.
    interceptors: list[Interceptor] = [TracingInterceptor()] if tracing.enabled() else []
    return await Client.connect(
        **temporal_connect_options(settings),
        data_converter=data_converter(settings),
        runtime=runtime,
        interceptors=interceptors,
    )


def metrics_runtime(settings: Settings, port: int) -> Runtime | None:
    """A Temporal runtime that serves the SDK's metrics (and the worker's own, recorded through its meter) on
    `port` at /metrics, in seconds and with Prometheus's names (`_total`, `_seconds`). One per process.

    None with metrics off: the default runtime records nothing, and the meters the worker's code asks for
    are no-ops."""
    if not settings.metrics:
        return None
    prometheus = PrometheusConfig(
        bind_address=f"{settings.bind_address}:{port}",
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
