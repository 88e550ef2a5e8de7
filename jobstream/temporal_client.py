"""The one way jobstream connects to Temporal: pydantic payloads, large ones claim-checked into MinIO."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from jobstream.payload_store import data_converter
from jobstream.settings import Settings

WORKFLOW_QUEUE = "jobstream-workflows"


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


def metrics_runtime(settings: Settings, port: int) -> Runtime:
    """A Temporal runtime that serves the SDK's metrics (and the worker's own, recorded through its meter) on
    `port` at /metrics, in seconds and with Prometheus's names (`_total`, `_seconds`). One per process."""
    prometheus = PrometheusConfig(
        bind_address=f"{settings.bind_address}:{port}",
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
