"""JobService process: `python -m services.job_service` serves gRPC with reflection and health."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import grpc
import prometheus_client
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import negate, service_name

from jobstream import agreement, untrusted_text
from jobstream.event_hub import EventHub
from jobstream.job_directory import JobDirectory
from jobstream.kafka_reader import KafkaLogReader
from jobstream.logs import configure_logging
from jobstream.payload_store import PayloadStore
from jobstream.pipelines import load_pipelines
from jobstream.settings import Settings, get_settings
from jobstream.temporal_client import connect
from jobstream.tracing import start_tracing, stop_tracing
from jobstream.v1 import job_service_pb2, job_service_pb2_grpc
from services.job_service.auth_interceptor import AuthInterceptor
from services.job_service.interceptors import StatusInterceptor
from services.job_service.metrics_interceptor import MetricsInterceptor
from services.job_service.service import JobService

SERVICE_NAME = job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Bounds on what a client can hold: message size, streams per connection, dead and idle connections."""
    limit = settings.max_input_bytes + 64 * 1024
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.max_concurrent_streams", settings.grpc_max_streams_per_connection),
        ("grpc.max_allowed_incoming_connections", settings.grpc_max_connections),
        # Ping idle connections, drop those that do not answer, and refuse clients that ping too often.
        ("grpc.keepalive_time_ms", settings.grpc_keepalive_s * 1000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.max_connection_age_ms", settings.grpc_max_connection_age_s * 1000),
        ("grpc.max_connection_age_grace_ms", 600_000),
    ]


def interceptors(settings: Settings, traced: bool) -> list[Any]:
    """Outermost first. A server span for every call but health checks (traces on) and metrics, so a refused
    call is traced and counted too; then authentication, so a call without a valid key is refused before its
    request is parsed; then the mapping of dependency failures to status codes."""
    chain: list[Any] = []
    if traced:
        chain.append(aio_server_interceptor(filter_=negate(service_name(HEALTH_SERVICE))))  # type: ignore[no-untyped-call]
    if settings.metrics:
        chain.append(MetricsInterceptor())
    return [*chain, AuthInterceptor(settings), StatusInterceptor()]


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS with the configured certificate; with a client CA, clients must present a certificate it signed."""
    ca = client_ca.read_bytes() if client_ca else None
    return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())], ca, require_client_auth=ca is not None)


async def serve() -> None:
    settings = get_settings()
    configure_logging("job-service", settings)
    settings.refuse_development_secrets()
    traced = start_tracing("job-service")
    pipelines = load_pipelines()
    untrusted_text.prepare()
    store = PayloadStore(settings)
    client = await connect(settings)
    directory = JobDirectory(client, store)
    # WatchJob's: no partition of its own, each tailed only while a watcher needs it (the bridges serve most).
    reader = KafkaLogReader(settings, owned=())
    hub = EventHub(reader, directory.locate, directory.final_event)
    await hub.start()
    await agreement.check(settings, store, reader.partition_count)
    # Inline prompts up to the absolute input maximum must fit in one message; larger ones are refused
    # by gRPC itself with RESOURCE_EXHAUSTED before any of our code runs.
    server = grpc.aio.server(
        options=server_options(settings),
        # No maximum_concurrent_rpcs: the calls in flight are bounded per tenant and in all by AuthInterceptor
        # (services/job_service/call_slots.py says why gRPC's own limit is not used).
        interceptors=interceptors(settings, traced),
    )
    job_service_pb2_grpc.add_JobServiceServicer_to_server(JobService(settings, client, store, pipelines, hub), server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [SERVICE_NAME, HEALTH_SERVICE, reflection.SERVICE_NAME],
        server,
    )
    address = f"{settings.bind_address}:{settings.grpc_port}"
    if settings.tls_cert_file and settings.tls_key_file:
        tls = server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
        server.add_secure_port(address, tls)
    else:
        server.add_insecure_port(address)
    if settings.metrics:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.bind_address)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logging.info("JobService listening on %s:%d", settings.bind_address, settings.grpc_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=5)
    await hub.stop()
    stop_tracing()


if __name__ == "__main__":
    asyncio.run(serve())
