"""The one settings object: every address, path and limit, read from `JOBSTREAM_*` environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Secrets anyone can read in this repository: fine on loopback, refused anywhere else.
DEVELOPMENT_SECRETS = frozenset(
    {"jobstream-dev-secret", "jobstream-dev-app-secret", "jobstream-dev-stream-token-secret"}
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


class Settings(BaseSettings):
    """Defaults are the local stack's; each field is overridden by `JOBSTREAM_<FIELD>` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="JOBSTREAM_", frozen=True, extra="ignore")

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

    payload_threshold_bytes: int = Field(
        256 * 1024, description="Payloads larger than this travel through MinIO, never Temporal."
    )

    stream_token_secret: str = Field(
        "", description="HMAC secret for SSE stream tokens; empty: generated once into STATE_DIR."
    )
    stream_token_ttl_s: int = Field(
        3600,
        description="Lifetime of an SSE stream token (seconds): a stream opened with it runs on, a reconnect after "
        "needs a fresh one (GetJob returns one).",
    )
    sse_keepalive_s: int = Field(
        15, ge=1, description="Seconds between keep-alive comments on an idle SSE stream (proxies drop silent ones)."
    )
    max_input_bytes: int = Field(
        16 * 1024 * 1024, description="Largest input a job accepts (inline prompt or uploaded object)."
    )

    state_dir: Path = Field(
        PROJECT_ROOT / ".state", description="Temporal DB, Kafka logs, MinIO data, logs, dev API key."
    )
    cache_dir: Path = Field(Path.home() / ".cache" / "jobstream", description="Built servers, cached by version.")
    model_repository: Path = Field(
        PROJECT_ROOT / "workers" / "model_repository", description="Triton model repository."
    )

    cors_origins: str = Field(
        "",
        description="Origins a browser may call the HTTP API and read streams from, comma-separated; `*` matches "
        "a port or a host part (http://127.0.0.1:*). Empty: same origin only.",
    )
    bridge_header_timeout_s: float = Field(
        10.0, gt=0, description="A client must send a request's headers within this many seconds, or is cut off."
    )
    bridge_max_connections: int = Field(
        10_000,
        ge=1,
        description="Connections (streams included) the bridge holds at once; past it a new request gets 503. "
        "Keep it under the process's open-file limit.",
    )
    sse_send_timeout_s: int = Field(
        30, description="An SSE client that takes longer than this to accept a write is disconnected (seconds)."
    )
    grpc_max_concurrent_rpcs: int = Field(
        1000,
        ge=1,
        description="JobService calls this process serves at once (health checks and refused calls aside); more "
        "are refused with RESOURCE_EXHAUSTED. Streams (WatchJob) may take three quarters of them, so unary calls "
        "always find room.",
    )
    grpc_max_streams_per_connection: int = Field(
        1000,
        ge=1,
        description="Concurrent calls one client connection may hold (a burst beyond it at a connection's start "
        "is refused with REFUSED_STREAM).",
    )
    grpc_max_connections: int = Field(
        2000, ge=1, description="Client connections the JobService accepts at once; more wait or are refused."
    )
    grpc_request_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A call's request message must arrive this long after its headers, or the call is ended "
        "(DEADLINE_EXCEEDED): a call that never sends one holds nothing for long.",
    )
    grpc_keepalive_s: int = Field(
        60, description="The JobService pings an idle connection this often and drops it when no answer comes."
    )
    grpc_max_connection_age_s: int = Field(
        3600,
        description="Connections older than this are asked to reconnect (a WatchJob resumes with `after`); "
        "their calls get 10 more minutes to finish.",
    )
    replicas: int = Field(
        1,
        ge=1,
        description="How many replicas of this process serve the same tenants behind one edge: each enforces its "
        "share of a tenant's per-process limits (calls, streams: the limit divided by this, rounded up) and of "
        "its running-jobs headroom, so that together they hold the tenant's limit.",
    )
    instance: str = Field(
        "", description="This replica's name (e.g. job-service-2), for its readiness file and logs; empty: its role."
    )
    replica_index: int = Field(
        0,
        ge=0,
        description="This replica's place among its REPLICAS (0 to REPLICAS-1): an SSE bridge tails the events "
        "partitions p with p % REPLICAS == REPLICA_INDEX, the ones the edge routes to it, and others only while a "
        "client it serves needs them.",
    )
    bridge_recent_records: int = Field(
        10_000,
        ge=0,
        description="Records of each events partition an SSE bridge keeps in memory as it tails it (read back that "
        "far when it starts tailing one): a client that resumes a job whose story they hold replays it from memory.",
    )
    tenant_max_running_jobs: int = Field(
        100,
        ge=0,
        description="Jobs one tenant may have running at once; more are refused (RESOURCE_EXHAUSTED, HTTP 429). "
        "0: no limit. A tenant's own in the API keys file's `tenants` section wins.",
    )
    tenant_max_calls: int = Field(
        100,
        ge=0,
        description="JobService calls one tenant may have in flight on one JobService (WatchJob streams "
        "included; 0: no limit); more are refused with RESOURCE_EXHAUSTED. Per tenant as above.",
    )
    tenant_max_uploads: int = Field(
        100,
        ge=0,
        description="Uploads one tenant may hold in the store at once (each up to the input limit, kept a day); "
        "CreateUpload is refused past it (RESOURCE_EXHAUSTED). 0: no limit. Per tenant as above.",
    )
    tenant_max_input_bytes_in_flight: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description="Bytes of input (prompts and uploads) one tenant's running jobs may hold together; a submit "
        "past it is refused (RESOURCE_EXHAUSTED). 0: no limit. Per tenant as above.",
    )
    tenant_max_streams: int = Field(
        1000, ge=0, description="SSE streams one tenant may hold open on a bridge (0: no limit); per tenant as above."
    )
    stream_token_max_streams: int = Field(
        8, ge=0, description="SSE streams one stream token may hold open on a bridge (0: no limit); per tenant too."
    )
    drills: bool = Field(
        False,
        description="Offer the fault-drill pipelines (injected GPU failures, slow stages): on in the local stack "
        "and the tests, off elsewhere, where any tenant could burn GPU attempts with them.",
    )
    models: str = Field(
        "",
        description="Models this deployment serves, comma-separated: SubmitJob refuses a pipeline that needs "
        "another. Empty: every model the pipelines name.",
    )
    api_keys_file: Path | None = Field(
        None, description='JSON {"keys": {API key: tenant}}; default STATE_DIR/api-keys.json.'
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("JOBSTREAM_TLS_CERT_FILE and JOBSTREAM_TLS_KEY_FILE go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _replica_in_range(self) -> Settings:
        if self.replica_index >= self.replicas:
            raise ValueError(
                f"JOBSTREAM_REPLICA_INDEX is {self.replica_index}: "
                f"it must be below JOBSTREAM_REPLICAS ({self.replicas})"
            )
        return self

    def refuse_development_secrets(self) -> None:
        """Exit with a clear message when this process would serve beyond loopback with a secret everyone knows
        (this module's defaults, or docker-compose's old fallbacks): with those, anyone could sign stream tokens
        or read every tenant's objects."""
        if is_loopback(self.bind_address):
            return
        known = [
            f"JOBSTREAM_{name.upper()}"
            for name in ("stream_token_secret", "minio_secret_key", "minio_root_password")
            if getattr(self, name) in DEVELOPMENT_SECRETS
        ]
        if known:
            raise SystemExit(
                f"refusing to serve on {self.bind_address} with the development value of {', '.join(known)}: "
                "set a secret of your own (the local stack's defaults are for 127.0.0.1 only)"
            )

    # -- TLS: the local stack is plaintext on loopback; every connection can be secured for production ------
    tls_cert_file: Path | None = Field(
        None, description="Certificate chain (PEM) the JobService and the SSE bridge serve TLS with; unset: plaintext."
    )
    tls_key_file: Path | None = Field(None, description="The private key (PEM) of TLS_CERT_FILE.")
    tls_client_ca_file: Path | None = Field(
        None, description="The JobService requires client certificates signed by this CA (mutual TLS)."
    )
    server_ca_file: Path | None = Field(
        None,
        description="CA bundle that clients of jobstream's own servers (the bridge's HTTP API and the CLI calling "
        "the JobService, the health probes) verify their certificates with; set, they connect with TLS.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects (SASL_SSL with SCRAM for a managed cluster)."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism, for the SASL_* protocols."
    )
    kafka_sasl_username: str = Field("", description="SASL user name.")
    kafka_sasl_password: str = Field("", description="SASL password.")
    kafka_ca_file: Path | None = Field(None, description="CA bundle for Kafka's TLS; unset: the system's.")
    minio_secure: bool = Field(False, description="Reach MinIO (or S3) over HTTPS.")
    minio_ca_file: Path | None = Field(None, description="CA bundle for MinIO's TLS; unset: the system's.")
    triton_ssl: bool = Field(False, description="Reach Triton's gRPC endpoint over TLS.")
    triton_ca_file: Path | None = Field(None, description="CA bundle for Triton's TLS; unset: the system's.")

    @property
    def temporal_address(self) -> str:
        return f"{self.temporal_host or self.host}:{self.temporal_port}"

    @property
    def kafka_bootstrap(self) -> str:
        """Comma-separated host:port, as every Kafka client here takes it."""
        return self.kafka_servers or f"{self.kafka_host or self.host}:{self.kafka_port}"

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

    @property
    def bridge_url(self) -> str:
        """Where clients reach the SSE bridge (what the JobService puts in events URLs)."""
        return self.public_bridge_url or self.local_bridge_url

    @property
    def local_bridge_url(self) -> str:
        """The bridge at its own address (HTTPS when it serves TLS), for probes on the same host or network."""
        return f"{'https' if self.tls_cert_file else 'http'}://{self.host}:{self.bridge_port}"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
