"""The one settings object: every address, path and limit, read from `JOBSTREAM_*` environment variables.

Its fields come in parts by concern: the servers' (settings_servers.py), payloads and files (here), the limits
(settings_limits.py) and TLS (here); the secrets it refuses beyond loopback are in development_secrets.py."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobstream import development_secrets
from jobstream.development_secrets import DEVELOPMENT_SECRETS, is_loopback
from jobstream.settings_limits import LimitSettings
from jobstream.settings_servers import ServerSettings

__all__ = ["DEVELOPMENT_SECRETS", "PROJECT_ROOT", "Settings", "get_settings", "is_loopback"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class PayloadSettings(BaseModel):
    """Payloads and streams (how large, how long) and where the stack keeps its files; a part of `Settings`."""

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


# Pydantic orders the fields from the last base to the first, then the class's own: servers, payloads, limits,
# TLS, the order of the README's settings table (devstack/settings_table.py).
class Settings(LimitSettings, PayloadSettings, ServerSettings, BaseSettings):
    """Defaults are the local stack's; each field is overridden by `JOBSTREAM_<FIELD>` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="JOBSTREAM_", frozen=True, extra="ignore")

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

    # The checks across fields stay here, in this order: the first that fails is the error a process reports.
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
        """Exit when this process would serve beyond loopback with a development secret (development_secrets.py)."""
        development_secrets.refuse_development_secrets(self)

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
