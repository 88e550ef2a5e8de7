"""The servers' part of the settings: where each server is (hosts, ports) and what the stack's own are told."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator


class ServerSettings(BaseModel):
    """Hosts and ports of jobstream's servers, Temporal, Kafka, MinIO and Triton; a part of `Settings`."""

    host: str = Field("127.0.0.1", description="Address every local server and service binds to and is reached at.")
    # Where servers live apart (docker-compose: one container each), these split HOST per role; empty means HOST.
    bind_host: str = Field("", description="Address the JobService and the SSE bridge bind to; empty: HOST.")
    temporal_host: str = Field("", description="Host of the Temporal frontend; empty: HOST.")
    kafka_host: str = Field("", description="Host of the Kafka broker; empty: HOST.")
    kafka_servers: str = Field(
        "",
        description="Kafka bootstrap servers of a cluster, comma-separated host:port (any of them will do; "
        "clients find the rest); empty: KAFKA_HOST:KAFKA_PORT.",
    )
    minio_host: str = Field("", description="Host of MinIO; empty: HOST.")
    triton_host: str = Field("", description="Host of Triton; empty: HOST.")

    grpc_port: int = Field(50051, description="JobService gRPC port.")
    metrics_port: int = Field(9464, description="JobService Prometheus metrics port (/metrics).")
    cpu_worker_metrics_port: int = Field(9465, description="CPU worker Prometheus metrics port (/metrics).")
    bridge_metrics_port: int = Field(
        9463, description="SSE bridge Prometheus metrics port (/metrics): never on the public bridge port."
    )
    gpu_worker_metrics_port: int = Field(
        9466, description="First GPU worker's Prometheus metrics port; each further model's worker takes the next."
    )
    metrics: bool = Field(
        True,
        description="Serve Prometheus metrics (the ports above) and record them; off, the processes record none "
        "(how `jobstream bench` measures what they cost).",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Every process's log lines: text, or one JSON object per line; either way a line about a job "
        "names its job_id (and the trace id when tracing is on).",
    )
    bridge_port: int = Field(8080, description="SSE bridge HTTP port.")
    public_bridge_url: str = Field("", description="Base URL clients use for SSE; empty means http://HOST:BRIDGE_PORT.")

    temporal_port: int = Field(7233, description="Temporal frontend gRPC port.")
    temporal_ui_port: int = Field(8233, description="Temporal Web UI port.")
    temporal_namespace: str = Field("default", description="Temporal namespace for all workflows.")
    temporal_dynamic_config: str = Field(
        "",
        description="JSON object of dynamic-config values for the local Temporal dev server, over the stack's own "
        "(devstack/temporal_server.py); a null drops one of those.",
    )
    temporal_sqlite_pragmas: str = Field(
        "",
        description="Comma-separated SQLite pragmas for the local Temporal dev server (e.g. synchronous=normal); "
        "empty: SQLite's defaults, a rollback journal with synchronous=FULL.",
    )

    kafka_port: int = Field(9092, description="Kafka broker (PLAINTEXT listener) port.")
    kafka_controller_port: int = Field(9093, description="Kafka KRaft controller port.")
    kafka_heap_mb: int = Field(512, description="Kafka broker JVM heap cap (MiB).")
    events_topic: str = Field("jobstream.event_log", description="Kafka topic of every job's events.")
    events_partitions: int = Field(8, description="Partitions of the events topic.")
    events_replication: int = Field(
        1, ge=1, description="Replicas of the events topic when provisioning creates it (a majority kept in sync)."
    )

    minio_port: int = Field(9000, description="MinIO S3 API port.")
    minio_console_port: int = Field(9001, description="MinIO console port.")
    minio_access_key: str = Field(
        "jobstream-app",
        description="The services' MinIO user: provisioning creates it, limited to the payload bucket, and it signs "
        "the upload and download URLs clients get.",
    )
    minio_secret_key: str = Field("jobstream-dev-app-secret", description="That user's secret key.")
    minio_root_user: str = Field(
        "jobstream", description="MinIO's root user: only provisioning (and the local MinIO server) use it."
    )
    minio_root_password: str = Field("jobstream-dev-secret", description="MinIO's root password.")
    minio_bucket: str = Field("jobstream", description="Bucket for claim-checked payloads.")
    minio_region: str = Field("us-east-1", description="Region sent to MinIO (avoids a lookup).")

    triton_http_port: int = Field(8000, description="Triton HTTP port.")
    triton_grpc_port: int = Field(8001, description="Triton gRPC port.")
    triton_metrics_port: int = Field(8002, description="Triton metrics port.")

    @field_validator("kafka_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        servers = [server.strip() for server in value.split(",")] if value.strip() else []
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port (kafka_servers is a comma-separated list of them)")
        return ",".join(servers)

    @property
    def temporal_address(self) -> str:
        return f"{self.temporal_host or self.host}:{self.temporal_port}"

    @property
    def kafka_bootstrap(self) -> str:
        """Comma-separated host:port, as every Kafka client here takes it."""
        return self.kafka_servers or f"{self.kafka_host or self.host}:{self.kafka_port}"

    @property
    def minio_endpoint(self) -> str:
        return f"{self.minio_host or self.host}:{self.minio_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host or self.host}:{self.triton_grpc_port}"

    @property
    def grpc_target(self) -> str:
        """Where clients reach the JobService."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def bind_address(self) -> str:
        """The interface jobstream's own servers listen on."""
        return self.bind_host or self.host
