"""SSE bridge process: `python -m sse_bridge` serves the events of every job over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import prometheus_client
import uvicorn
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from jobstream import agreement
from jobstream.connections import job_service_channel
from jobstream.event_hub import EventHub
from jobstream.job_directory import JobDirectory
from jobstream.kafka_reader import KafkaLogReader
from jobstream.logs import configure_logging
from jobstream.payload_store import PayloadStore
from jobstream.settings import get_settings
from jobstream.stream_tokens import StreamTokens
from jobstream.temporal_client import connect
from jobstream.tracing import enabled, start_tracing, stop_tracing
from sse_bridge.admission import Admission
from sse_bridge.app import Bridge, create_app
from sse_bridge.http_api import HttpApi
from sse_bridge.http_protocol import HeadDeadlineProtocol
from sse_bridge.metrics import TAIL


@contextlib.asynccontextmanager
async def open_bridge() -> AsyncIterator[Bridge]:
    settings = get_settings()
    store = PayloadStore(settings)
    directory = JobDirectory(await connect(settings), store)
    # The partitions this replica owns (REPLICA_INDEX of REPLICAS), the ones the edge routes its streams to.
    reader = KafkaLogReader(settings)
    hub = EventHub(reader, directory.locate, directory.final_event)
    await hub.start()
    await agreement.check(settings, store, reader.partition_count)
    TAIL.reader = reader
    try:
        # With traces on, a job submitted over HTTP starts its trace at the call to the JobService.
        interceptors = aio_client_interceptors() if enabled() else None  # type: ignore[no-untyped-call]
        async with job_service_channel(settings, interceptors=interceptors) as channel:
            admission = Admission.of(settings)
            yield Bridge(
                hub,
                directory,
                StreamTokens(settings),
                settings.sse_keepalive_s,
                api=HttpApi(channel, max_body_bytes=2 * settings.max_input_bytes, read_keys=admission.read),
                send_timeout_s=settings.sse_send_timeout_s,
                metrics=settings.metrics,
                admission=admission,
            )
    finally:
        await hub.stop()
        stop_tracing()


def main() -> None:
    settings = get_settings()
    configure_logging("sse-bridge", settings)
    settings.refuse_development_secrets()
    start_tracing("sse-bridge")
    HeadDeadlineProtocol.header_timeout_s = settings.bridge_header_timeout_s
    if settings.metrics:
        # Its own port, as every process's: the public port serves clients, and what /metrics tells (tenants'
        # load, error rates) is for the operators' scraper only.
        prometheus_client.start_http_server(settings.bridge_metrics_port, addr=settings.bind_address)
    uvicorn.run(
        create_app(open_bridge, settings.cors_origins),
        host=settings.bind_address,
        port=settings.bridge_port,
        # Per event the bridge's own work is small now; the loop and the HTTP writer are most of what is left.
        loop="uvloop",
        http=HeadDeadlineProtocol,
        # Past this many connections (streams included) or requests in flight, new requests get 503 at once.
        limit_concurrency=settings.bridge_max_connections,
        log_level="warning",
        access_log=False,
        # uvicorn's loggers write through the process's one handler, in its format.
        log_config=None,
        # Open streams would hold a SIGTERM forever; after this they are closed and clients resume elsewhere
        # with Last-Event-ID.
        timeout_graceful_shutdown=5,
        # HTTPS when given a certificate (the same settings as the JobService's).
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )


if __name__ == "__main__":
    main()
