"""docker-compose.yml agrees with the settings module, the pipelines and itself (the stack cannot run here).

Each check is a function returning the problems it finds (tests/unit/compose_settings_checks.py and
compose_service_checks.py); every check passes on the shipped file and is shown to fail on a copy of it with one
deliberate mistake.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from jobstream.settings import PROJECT_ROOT
from tests.unit.compose_file import DOCKERFILE, Check, Compose, load, services
from tests.unit.compose_service_checks import check_health_and_order, check_models, check_processes, check_scrapes
from tests.unit.compose_settings_checks import check_ports, check_server_ports, check_variables

CHECKS: dict[str, Check] = {
    "ports": check_ports,
    "server_ports": check_server_ports,
    "variables": check_variables,
    "health_and_order": check_health_and_order,
    "processes": check_processes,
    "models": check_models,
    "scrapes": check_scrapes,
}


@pytest.mark.parametrize("name", CHECKS)
def test_compose_file_passes(name: str) -> None:
    assert CHECKS[name](load()) == []


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    """A mutation setting services.<path> (dots; list items by index) to value, or deleting it for None."""

    def mutate(compose: Compose) -> None:
        keys: list[str | int] = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = services(compose)
        for key in keys[:-1]:
            node = node[key]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return mutate


def _drop_gpu_worker(compose: Compose) -> None:
    del services(compose)["gpu-worker-keywords"]


MUTATIONS: list[tuple[str, str, Callable[[Compose], None]]] = [
    ("scrapes", "prometheus config not mounted", _set("prometheus.volumes", None)),
    (
        "scrapes",
        "a worker prometheus does not scrape",
        _set("gpu-worker-extra", {"command": ["python", "-m", "workers.gpu_worker", "--model", "tinylm"]}),
    ),
    ("ports", "grafana published elsewhere", _set("grafana.ports", ["127.0.0.1:3001:3000"])),
    ("ports", "grpc port moved", _set("job-service.ports", ["127.0.0.1:50052:50052"])),
    ("ports", "minio console missing", _set("minio.ports", ["127.0.0.1:9000:9000"])),
    ("ports", "bridge published on all interfaces", _set("sse-bridge.ports", ["8080:8080"])),
    ("ports", "triton ports gone", _set("triton.ports", None)),
    (
        "server_ports",
        "kafka controller port",
        _set("kafka.environment.KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9094"),
    ),
    ("server_ports", "ui port", _set("temporal-ui.environment.TEMPORAL_UI_PORT", 8080)),
    ("server_ports", "triton grpc port", _set("triton.command.3", "--grpc-port=9001")),
    ("variables", "unknown variable", _set("cpu-worker.environment.JOBSTREAM_TEMPORAL_ADDRESS", "temporal:7233")),
    ("variables", "host points nowhere", _set("sse-bridge.environment.JOBSTREAM_KAFKA_HOST", "broker")),
    ("variables", "interpolated unknown", _set("job-service.environment.JOBSTREAM_GRPC_PORT", "${JOBSTREAM_GRPC:-1}")),
    (
        "variables",
        "fallback differs",
        _set("minio.environment.MINIO_ROOT_USER", "${JOBSTREAM_MINIO_ROOT_USER:-admin}"),
    ),
    (
        "variables",
        "no shared token secret",
        _set("job-service.environment.JOBSTREAM_STREAM_TOKEN_SECRET", "${JOBSTREAM_STREAM_TOKEN_SECRET:-}"),
    ),
    (
        "variables",
        "a known secret to fall back on",
        _set("minio.environment.MINIO_ROOT_PASSWORD", "${JOBSTREAM_MINIO_ROOT_PASSWORD:-jobstream-dev-secret}"),
    ),
    ("variables", "bound to loopback", _set("job-service.environment.JOBSTREAM_BIND_HOST", None)),
    ("health_and_order", "no healthcheck", _set("cpu-worker.healthcheck", None)),
    ("health_and_order", "started, not healthy", _set("job-service.depends_on.kafka.condition", "service_started")),
    ("health_and_order", "no conditions", _set("sse-bridge.depends_on", ["temporal"])),
    (
        "health_and_order",
        "one-shot awaited as healthy",
        _set("cpu-worker.depends_on.provision.condition", "service_healthy"),
    ),
    ("health_and_order", "healthy but no probe", _set("kafka.healthcheck", None)),
    ("processes", "wrong module", _set("sse-bridge.command", ["python", "-m", "sse_bridge.nope"])),
    ("processes", "wrong role probed", _set("gpu-worker-tinylm.healthcheck.test.5", "cpu-worker")),
    ("models", "model without worker", _drop_gpu_worker),
    ("models", "repository writable", _set("triton.volumes", ["./workers/model_repository:/models"])),
    ("models", "triton before training", _set("triton.depends_on", {})),
    ("models", "worker before triton", _set("gpu-worker-tinylm.depends_on.triton", None)),
]


@pytest.mark.parametrize(("check", "mutate"), [(c, m) for c, _, m in MUTATIONS], ids=[d for _, d, _ in MUTATIONS])
def test_each_check_catches_a_mistake(check: str, mutate: Callable[[Compose], None]) -> None:
    broken = load()
    mutate(broken)
    assert CHECKS[check](broken), f"check {check} missed the mistake"


def test_image_installs_from_the_lock_without_dev_or_server_groups() -> None:
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    dockerfile = DOCKERFILE.read_text()
    assert "\nFROM python:3.11-slim\n" in dockerfile
    assert "uv sync --frozen --no-dev --no-group servers --no-group bench\n" in dockerfile
    # The groups the Dockerfile leaves out are every group there is, and uv would otherwise install them.
    project = tomllib.loads(pyproject)
    assert set(project["dependency-groups"]) == {"servers", "bench", "dev"}
    assert set(project["tool"]["uv"]["default-groups"]) == {"servers", "bench", "dev"}
    for package in ("jobstream", "services", "workers", "sse_bridge", "devstack"):
        assert f"COPY {package} ./{package}\n" in dockerfile
