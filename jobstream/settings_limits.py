"""The limits' part of the settings: what the front doors admit and hold, shared among replicas, per tenant."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class LimitSettings(BaseModel):
    """Connections, timeouts, replicas and each tenant's quotas; the pipelines and keys served; a part of
    `Settings`."""

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
    webhooks_allow_private: bool = Field(
        False,
        description="Let webhook endpoints be http URLs and loopback or private addresses: on in the local stack, "
        "off elsewhere (a webhook URL is a server-side request forgery hole).",
    )
    models: str = Field(
        "",
        description="Models this deployment serves, comma-separated: SubmitJob refuses a pipeline that needs "
        "another. Empty: every model the pipelines name.",
    )
    api_keys_file: Path | None = Field(
        None, description='JSON {"keys": {API key: tenant}}; default STATE_DIR/api-keys.json.'
    )

    @property
    def served_models(self) -> set[str]:
        """`models` as a set (empty: every model the pipelines name)."""
        return {model.strip() for model in self.models.split(",") if model.strip()}
