"""docker-compose.yml agrees with the settings module, the pipelines and itself (the stack cannot run here).

Each check is a function returning the problems it finds; every check passes on the shipped file and is
shown to fail on a copy of it with one deliberate mistake.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobstream.pipelines import load_pipelines
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


def check_ports(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        ports = published(service)
        if not ports:
            continue
        if name not in PUBLISHED and name not in OBSERVABILITY_PORTS:
            problems.append(f"{name} publishes {ports} but is not a server with a port setting")
            continue
        want = sorted(default(field) for field in PUBLISHED[name]) if name in PUBLISHED else OBSERVABILITY_PORTS[name]
        if sorted(host for _, host, _ in ports) != want or sorted(inner for _, _, inner in ports) != want:
            problems.append(f"{name} publishes {ports}; the settings say {want}")
        problems += [
            f"{name} publishes {host} on {ip or 'every interface'}" for ip, host, _ in ports if ip != "127.0.0.1"
        ]
    for name in PUBLISHED:
        if name not in services(compose) or not published(services(compose)[name]):
            problems.append(f"{name} publishes no port")
    return problems


def check_server_ports(compose: Compose) -> list[str]:
    """The ports the servers themselves are told to use inside their containers."""
    svc = services(compose)
    problems = []
    kafka = svc["kafka"]["environment"]
    port, controller = default("kafka_port"), default("kafka_controller_port")
    if kafka.get("KAFKA_LISTENERS") != f"PLAINTEXT://:{port},CONTROLLER://:{controller}":
        problems.append(f"kafka listeners {kafka.get('KAFKA_LISTENERS')}")
    if kafka.get("KAFKA_ADVERTISED_LISTENERS") != f"PLAINTEXT://kafka:{port}":
        problems.append(f"kafka advertises {kafka.get('KAFKA_ADVERTISED_LISTENERS')}")
    if kafka.get("KAFKA_CONTROLLER_QUORUM_VOTERS") != f"{kafka.get('KAFKA_NODE_ID')}@kafka:{controller}":
        problems.append(f"kafka voters {kafka.get('KAFKA_CONTROLLER_QUORUM_VOTERS')}")
    minio = command(svc["minio"])
    for flag, field in (("--address", "minio_port"), ("--console-address", "minio_console_port")):
        if flag not in minio or minio[minio.index(flag) + 1] != f":{default(field)}":
            problems.append(f"minio {flag} is not :{default(field)}")
    triton = command(svc["triton"])
    for flag, field in (("--http-port", "triton_http_port"), ("--grpc-port", "triton_grpc_port")):
        if f"{flag}={default(field)}" not in triton:
            problems.append(f"triton lacks {flag}={default(field)}")
    if f"--metrics-port={default('triton_metrics_port')}" not in triton:
        problems.append("triton metrics port differs from the settings")
    if str(svc["temporal-ui"]["environment"].get("TEMPORAL_UI_PORT")) != str(default("temporal_ui_port")):
        problems.append("temporal-ui listens elsewhere than the settings' UI port")
    if svc["temporal"]["environment"].get("TEMPORAL_ADDRESS") != f"temporal:{default('temporal_port')}":
        problems.append("temporal's own address differs from the settings' port")
    return problems


def check_variables(compose: Compose) -> list[str]:
    """Every JOBSTREAM_* variable is a Settings field; interpolation defaults are the Settings defaults."""
    problems = []
    fields = Settings.model_fields
    for name, service in services(compose).items():
        for variable in service.get("environment", {}):
            if variable.startswith("JOBSTREAM_") and variable[len("JOBSTREAM_") :].lower() not in fields:
                problems.append(f"{name}: {variable} is not a Settings field")
        for field, target in SERVER_HOSTS.items():
            value = service.get("environment", {}).get(f"JOBSTREAM_{field.upper()}")
            if field == "triton_host" and "gpu" in service.get("profiles", []):
                target = "triton-vllm"  # the GPU profile's model runs on the vLLM Triton
            if is_jobstream(service) and value != target:
                problems.append(f"{name}: JOBSTREAM_{field.upper()} is {value!r}, not the {target} service")
        # A server bound to the container's loopback cannot be reached through its published port.
        if (
            is_jobstream(service)
            and service.get("ports")
            and service["environment"].get("JOBSTREAM_BIND_HOST") != "0.0.0.0"
        ):
            problems.append(f"{name} does not listen on every interface of its container")
    for variable, operator, fallback in INTERPOLATION.findall(yaml.safe_dump(compose)):
        field = variable[len("JOBSTREAM_") :].lower()
        if field not in fields:
            problems.append(f"${{{variable}}} is not a Settings field")
            continue
        if field in SECRETS:
            # A known fallback would be a secret everyone can read here; an empty one, for the token secret,
            # "generated into STATE_DIR", which the containers do not share.
            if operator != "?":
                problems.append(f"${{{variable}}} must be required (${{{variable}:?...}}), not fall back")
            continue
        if operator == "?":
            continue
        if field == "models":
            # Empty means every model the pipelines name; without the gpu profile, the CPU Triton's.
            want = ",".join(flag.removeprefix("--load-model=") for flag in loaded_models(services(compose)["triton"]))
        elif field == "public_bridge_url":
            # Empty means http://HOST:BRIDGE_PORT; spelled out here.
            want = f"http://{default('host')}:{default('bridge_port')}"
        else:
            want = str(default(field))
        if fallback != want:
            problems.append(f"${{{variable}}} falls back to {fallback!r}, the settings to {want!r}")
    return problems


def check_health_and_order(compose: Compose) -> list[str]:
    svc = services(compose)
    problems = []
    for name, service in svc.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without conditions")
            continue
        for target, rule in depends.items():
            condition = rule.get("condition")
            if target not in svc:
                problems.append(f"{name} depends on unknown {target}")
            elif is_one_shot(svc[target]) and condition != "service_completed_successfully":
                problems.append(f"{name} waits for one-shot {target} with {condition}")
            elif not is_one_shot(svc[target]) and condition != "service_healthy":
                problems.append(f"{name} waits for {target} with {condition}")
            elif condition == "service_healthy" and "healthcheck" not in svc[target]:
                problems.append(f"{name} waits for {target}, which has no healthcheck")
        if is_one_shot(service):
            continue
        if not service.get("healthcheck", {}).get("test"):
            problems.append(f"{name} has no healthcheck")
        if is_jobstream(service) and not depends:
            problems.append(f"{name} starts without waiting for anything")
    for name, service in svc.items():
        if is_jobstream(service) and not is_one_shot(service):
            for needed in ("provision", "temporal", "kafka", "minio"):
                if needed not in service.get("depends_on", {}):
                    problems.append(f"{name} does not wait for {needed}")
    return problems


def check_processes(compose: Compose) -> list[str]:
    """jobstream's processes run the project's own modules; worker health checks name their own role."""
    svc = services(compose)
    problems = []
    for name, module in {
        **JOBSTREAM_MODULES,
        "provision": "devstack.provision",
        "train": "workers.tinylm.train",
    }.items():
        if name not in svc:
            problems.append(f"no {name} service")
        elif command(svc[name])[:3] != ["python", "-m", module]:
            problems.append(f"{name} runs {command(svc[name])}")
    for name, service in svc.items():
        argv = command(service)
        if is_jobstream(service) and argv[:2] == ["python", "-m"] and importlib.util.find_spec(argv[2]) is None:
            problems.append(f"{name} runs a module that does not exist: {argv[2]}")
        test = [str(part) for part in service.get("healthcheck", {}).get("test", [])]
        if test[:4] == ["CMD", "python", "-m", "devstack.healthcheck"]:
            role = test[5] if test[4:5] == ["worker"] else test[4]
            if role != name:
                problems.append(f"{name}'s health check looks at {role}")
    return problems


def check_models(compose: Compose) -> list[str]:
    """One GPU worker per model the pipelines name, each waiting for Triton; Triton serves trained weights."""
    svc = services(compose)
    problems = []
    served = {}
    for name, service in svc.items():
        argv = command(service)
        if argv[:3] == ["python", "-m", "workers.gpu_worker"]:
            model = argv[argv.index("--model") + 1]
            served[model] = name
            if name != f"gpu-worker-{model}":
                problems.append(f"{name} serves {model}")
            # It waits for the Triton it talks to, and that one loads its model.
            triton_name = service["environment"].get("JOBSTREAM_TRITON_HOST")
            if service.get("depends_on", {}).get(triton_name, {}).get("condition") != "service_healthy":
                problems.append(f"{name} does not wait for a healthy Triton")
            if f"--load-model={model}" not in loaded_models(svc.get(triton_name, {})):
                problems.append(f"{name}'s Triton ({triton_name}) does not load {model}")
    if set(served) != load_pipelines().models():
        problems.append(f"GPU workers serve {sorted(served)}; the pipelines need {sorted(load_pipelines().models())}")
    triton = svc["triton"]
    if "./workers/model_repository:/models:ro" not in triton.get("volumes", []):
        problems.append(f"triton mounts {triton.get('volumes')}, not ./workers/model_repository read-only")
    if "--model-repository=/models" not in command(triton):
        problems.append("triton does not serve /models")
    if triton.get("depends_on", {}).get("train", {}).get("condition") != "service_completed_successfully":
        problems.append("triton starts before the weights are trained")
    repository = CONTAINER_ROOT / default("model_repository").relative_to(PROJECT_ROOT)
    if f"./workers/model_repository:{repository}" not in svc.get("train", {}).get("volumes", []):
        problems.append(f"train does not write into the mounted repository at {repository}")
    return problems


def check_scrapes(compose: Compose) -> list[str]:
    """Prometheus scrapes every jobstream process, each at its own metrics port (the settings' defaults)."""
    svc = services(compose)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target for job in config["scrape_configs"] for group in job["static_configs"] for target in group["targets"]
    }
    ports = {
        "job-service": default("metrics_port"),
        "cpu-worker": default("cpu_worker_metrics_port"),
        "sse-bridge": default("bridge_metrics_port"),
        "triton": default("triton_metrics_port"),
    }
    problems = []
    for name, service in svc.items():
        if command(service)[:3] == ["python", "-m", "workers.gpu_worker"]:
            ports[name] = default("gpu_worker_metrics_port")  # one container each: the first port
    for name, port in ports.items():
        if name in svc and not svc[name].get("profiles") and f"{name}:{port}" not in targets:
            problems.append(f"prometheus does not scrape {name}:{port}")
    problems += [
        f"prometheus scrapes {target}, which is no service" for target in targets if target.split(":")[0] not in svc
    ]
    mounts = svc.get("prometheus", {}).get("volumes", [])
    if "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" not in mounts:
        problems.append(f"prometheus mounts {mounts}, not deploy/prometheus/prometheus.yml")
    return problems


CHECKS: dict[str, Check] = {
    "ports": check_ports,
    "server_ports": check_server_ports,
    "variables": check_variables,
    "health_and_order": check_health_and_order,
    "processes": check_processes,
    "models": check_models,
    "scrapes": check_scrapes,
}


@functools.cache
def _parsed() -> Compose:
    data: Compose = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def load() -> Compose:
    return copy.deepcopy(_parsed())


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
