"""docker-compose.yml as the compose checks read it: the file parsed once (each test gets its own copy to break),
the accessors for its services, and what the settings and the repository say it must agree with."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from jobstream.settings import PROJECT_ROOT, Settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
CONTAINER_ROOT = Path("/app")  # WORKDIR of the Dockerfile: PROJECT_ROOT inside the image

Compose = dict[str, Any]
Check = Callable[[Compose], list[str]]

# The Settings fields of the ports each server publishes.
PUBLISHED = {
    "job-service": ["grpc_port"],
    "sse-bridge": ["bridge_port"],
    "temporal": ["temporal_port"],
    "temporal-ui": ["temporal_ui_port"],
    "kafka": ["kafka_port"],
    "minio": ["minio_port", "minio_console_port"],
    "triton": ["triton_http_port", "triton_grpc_port", "triton_metrics_port"],
}
# Observability servers publish ports that are not jobstream settings.
OBSERVABILITY_PORTS = {"prometheus": [9090], "grafana": [3000]}
PROMETHEUS_CONFIG = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"
# JOBSTREAM_<SERVER>_HOST -> the compose service that must hold that server.
SERVER_HOSTS = {"temporal_host": "temporal", "kafka_host": "kafka", "minio_host": "minio", "triton_host": "triton"}
JOBSTREAM_MODULES = {
    "job-service": "services.job_service",
    "cpu-worker": "workers.cpu_worker",
    "sse-bridge": "sse_bridge",
}
INTERPOLATION = re.compile(r"\$\{(JOBSTREAM_[A-Z0-9_]+)(?::?([-?])([^}]*))?\}")
# No fallback for these: compose refuses to start without them (`${VAR:?message}`).
SECRETS = frozenset({"stream_token_secret", "minio_secret_key", "minio_root_password"})


def default(field: str) -> Any:
    """The Settings default (never the environment: the test run may export other ports)."""
    return Settings.model_fields[field].default


def services(compose: Compose) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def is_jobstream(service: dict[str, Any]) -> bool:
    return "build" in service


def loaded_models(triton: dict[str, Any]) -> list[str]:
    return [flag for flag in command(triton) if flag.startswith("--load-model=")] if triton else []


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command", [])
    return [str(part) for part in (value.split() if isinstance(value, str) else value)]


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each short-syntax port entry."""
    result = []
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        ip = parts[0] if len(parts) == 3 else ""
        result.append((ip, int(parts[-2]), int(parts[-1])))
    return result


@functools.cache
def _parsed() -> Compose:
    data: Compose = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def load() -> Compose:
    return copy.deepcopy(_parsed())
