"""The compose checks of what must agree with jobstream.settings: the ports each server publishes and is told to
listen on, the JOBSTREAM_* variables, the hosts they name and the interpolation fallbacks. Each check returns the
problems it finds (tests/unit/test_docker_compose.py runs them)."""

from __future__ import annotations

from typing import Any

import yaml

from jobstream.settings import Settings
from tests.unit.compose_file import (
    INTERPOLATION,
    OBSERVABILITY_PORTS,
    PUBLISHED,
    SECRETS,
    SERVER_HOSTS,
    Compose,
    command,
    default,
    is_jobstream,
    loaded_models,
    published,
    services,
)


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


def _kafka_listener_problems(kafka: dict[str, Any]) -> list[str]:
    """Kafka's listeners, what it advertises and its controller quorum, at the settings' ports."""
    problems = []
    port, controller = default("kafka_port"), default("kafka_controller_port")
    if kafka.get("KAFKA_LISTENERS") != f"PLAINTEXT://:{port},CONTROLLER://:{controller}":
        problems.append(f"kafka listeners {kafka.get('KAFKA_LISTENERS')}")
    if kafka.get("KAFKA_ADVERTISED_LISTENERS") != f"PLAINTEXT://kafka:{port}":
        problems.append(f"kafka advertises {kafka.get('KAFKA_ADVERTISED_LISTENERS')}")
    if kafka.get("KAFKA_CONTROLLER_QUORUM_VOTERS") != f"{kafka.get('KAFKA_NODE_ID')}@kafka:{controller}":
        problems.append(f"kafka voters {kafka.get('KAFKA_CONTROLLER_QUORUM_VOTERS')}")
    return problems


def _port_flag_problems(svc: dict[str, dict[str, Any]]) -> list[str]:
    """MinIO's and Triton's port flags on their command lines, at the settings' ports."""
    problems = []
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
    return problems


def check_server_ports(compose: Compose) -> list[str]:
    """The ports the servers themselves are told to use inside their containers."""
    svc = services(compose)
    problems = _kafka_listener_problems(svc["kafka"]["environment"]) + _port_flag_problems(svc)
    if str(svc["temporal-ui"]["environment"].get("TEMPORAL_UI_PORT")) != str(default("temporal_ui_port")):
        problems.append("temporal-ui listens elsewhere than the settings' UI port")
    if svc["temporal"]["environment"].get("TEMPORAL_ADDRESS") != f"temporal:{default('temporal_port')}":
        problems.append("temporal's own address differs from the settings' port")
    return problems


def _unknown_variables(name: str, service: dict[str, Any]) -> list[str]:
    fields = Settings.model_fields
    return [
        f"{name}: {variable} is not a Settings field"
        for variable in service.get("environment", {})
        if variable.startswith("JOBSTREAM_") and variable[len("JOBSTREAM_") :].lower() not in fields
    ]


def _host_problems(name: str, service: dict[str, Any]) -> list[str]:
    """A jobstream process's JOBSTREAM_<SERVER>_HOST names the compose service that holds that server."""
    problems = []
    for field, target in SERVER_HOSTS.items():
        value = service.get("environment", {}).get(f"JOBSTREAM_{field.upper()}")
        if field == "triton_host" and "gpu" in service.get("profiles", []):
            target = "triton-vllm"  # the GPU profile's model runs on the vLLM Triton
        if is_jobstream(service) and value != target:
            problems.append(f"{name}: JOBSTREAM_{field.upper()} is {value!r}, not the {target} service")
    return problems


def _expected_fallback(compose: Compose, field: str) -> str:
    if field == "models":
        # Empty means every model the pipelines name; without the gpu profile, the CPU Triton's.
        return ",".join(flag.removeprefix("--load-model=") for flag in loaded_models(services(compose)["triton"]))
    if field == "public_bridge_url":
        # Empty means http://HOST:BRIDGE_PORT; spelled out here.
        return f"http://{default('host')}:{default('bridge_port')}"
    return str(default(field))


def _interpolation_problems(compose: Compose, variable: str, operator: str, fallback: str) -> list[str]:
    """One `${JOBSTREAM_...}` of the file: a Settings field, required if a secret, else falling back to its default."""
    field = variable[len("JOBSTREAM_") :].lower()
    if field not in Settings.model_fields:
        return [f"${{{variable}}} is not a Settings field"]
    if field in SECRETS:
        # A known fallback would be a secret everyone can read here; an empty one, for the token secret,
        # "generated into STATE_DIR", which the containers do not share.
        if operator != "?":
            return [f"${{{variable}}} must be required (${{{variable}:?...}}), not fall back"]
        return []
    if operator == "?":
        return []
    want = _expected_fallback(compose, field)
    if fallback != want:
        return [f"${{{variable}}} falls back to {fallback!r}, the settings to {want!r}"]
    return []


def check_variables(compose: Compose) -> list[str]:
    """Every JOBSTREAM_* variable is a Settings field; interpolation defaults are the Settings defaults."""
    problems = []
    for name, service in services(compose).items():
        problems += _unknown_variables(name, service)
        problems += _host_problems(name, service)
        # A server bound to the container's loopback cannot be reached through its published port.
        if (
            is_jobstream(service)
            and service.get("ports")
            and service["environment"].get("JOBSTREAM_BIND_HOST") != "0.0.0.0"
        ):
            problems.append(f"{name} does not listen on every interface of its container")
    for variable, operator, fallback in INTERPOLATION.findall(yaml.safe_dump(compose)):
        problems += _interpolation_problems(compose, variable, operator, fallback)
    return problems
