"""How every client of jobstream's dependencies connects, TLS and credentials included: Kafka (aiokafka), the
JobService (gRPC) and Temporal (the SDK's environment configuration). MinIO and Triton take theirs where
their one client is made (payload_store.minio_client, the model stage's Triton client)."""

from __future__ import annotations

import os
from typing import Any

import grpc
from aiokafka.helpers import create_ssl_context
from temporalio.envconfig import ClientConfig

from jobstream.settings import Settings


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka producer, consumer, admin and client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        ca = str(settings.kafka_ca_file) if settings.kafka_ca_file else None
        options["ssl_context"] = create_ssl_context(cafile=ca)
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def job_service_channel(settings: Settings, **options: Any) -> grpc.aio.Channel:
    """A channel to the JobService: TLS, verified against JOB_SERVICE_CA_FILE, when that is set."""
    if settings.server_ca_file is None:
        return grpc.aio.insecure_channel(settings.grpc_target, **options)
    credentials = grpc.ssl_channel_credentials(root_certificates=settings.server_ca_file.read_bytes())
    return grpc.aio.secure_channel(settings.grpc_target, credentials, **options)


def temporal_connect_options(settings: Settings) -> dict[str, Any]:
    """Client.connect's target, namespace and security: the settings', overridden by the Temporal SDK's standard
    environment configuration (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, and a
    TEMPORAL_CONFIG_FILE profile), which is how Temporal Cloud (mTLS or an API key) is reached."""
    configured = ClientConfig.load_client_connect_config(disable_file="TEMPORAL_CONFIG_FILE" not in os.environ)
    return {"target_host": settings.temporal_address, "namespace": settings.temporal_namespace, **configured}
