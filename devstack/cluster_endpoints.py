"""STATE_DIR/cluster/endpoints.json: where the cluster profile's clients connect and which pid each of its
processes has, by role name. `jobstream up --cluster` writes it; operators, the cluster tests and
`jobstream reliability --cluster` read it (and find processes there, never by `ps` patterns)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Endpoints(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    edge_grpc: str  # host:port of the JobService replicas, TLS
    edge_http: str  # https:// base URL of the bridge replicas (HTTP API, SSE, live page)
    ca_file: str  # the CA the edge's certificate is signed by
    api_keys_file: str
    api_key: str  # the development tenant's
    kafka_bootstrap: str
    temporal_address: str
    temporal_nodes: list[str]
    temporal_namespace: str
    minio_endpoint: str
    postgres: str
    processes: dict[str, int]

    @classmethod
    def read(cls, path: Path) -> Endpoints:
        return cls.model_validate_json(path.read_text())
