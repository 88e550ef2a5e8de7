"""The compose checks of what runs and in what order: health checks and start conditions, the modules each
process runs, the GPU workers and Triton's trained weights, Prometheus' scrapes. Each check returns the problems
it finds (tests/unit/test_docker_compose.py runs them)."""

from __future__ import annotations

import importlib.util
from typing import Any

import yaml

from jobstream.pipelines import load_pipelines
from jobstream.settings import PROJECT_ROOT
from tests.unit.compose_file import (
    CONTAINER_ROOT,
    JOBSTREAM_MODULES,
    PROMETHEUS_CONFIG,
    Compose,
    command,
    default,
    is_jobstream,
    is_one_shot,
    loaded_models,
    services,
)

GPU_WORKER = ["python", "-m", "workers.gpu_worker"]


def _dependency_problems(svc: dict[str, dict[str, Any]], name: str, depends: dict[str, Any]) -> list[str]:
    """Each service `name` waits for: one that exists, a one-shot until it completed, a server until healthy."""
    problems = []
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
    return problems


def _probe_problems(name: str, service: dict[str, Any], depends: dict[str, Any]) -> list[str]:
    """A long-running service has a health check, and a jobstream one waits for something before it starts."""
    if is_one_shot(service):
        return []
    problems = []
    if not service.get("healthcheck", {}).get("test"):
        problems.append(f"{name} has no healthcheck")
    if is_jobstream(service) and not depends:
        problems.append(f"{name} starts without waiting for anything")
    return problems


def _missing_waits(svc: dict[str, dict[str, Any]]) -> list[str]:
    """Every long-running jobstream process waits for provisioning and the servers it needs."""
    return [
        f"{name} does not wait for {needed}"
        for name, service in svc.items()
        if is_jobstream(service) and not is_one_shot(service)
        for needed in ("provision", "temporal", "kafka", "minio")
        if needed not in service.get("depends_on", {})
    ]


def check_health_and_order(compose: Compose) -> list[str]:
    svc = services(compose)
    problems = []
    for name, service in svc.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without conditions")
            continue
        problems += _dependency_problems(svc, name, depends)
        problems += _probe_problems(name, service, depends)
    return problems + _missing_waits(svc)


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


def _gpu_worker_problems(svc: dict[str, dict[str, Any]], name: str, service: dict[str, Any], model: str) -> list[str]:
    """A GPU worker is named for its model and waits for a healthy Triton that loads it."""
    problems = []
    if name != f"gpu-worker-{model}":
        problems.append(f"{name} serves {model}")
    # It waits for the Triton it talks to, and that one loads its model.
    triton_name = service["environment"].get("JOBSTREAM_TRITON_HOST")
    if service.get("depends_on", {}).get(triton_name, {}).get("condition") != "service_healthy":
        problems.append(f"{name} does not wait for a healthy Triton")
    if f"--load-model={model}" not in loaded_models(svc.get(triton_name, {})):
        problems.append(f"{name}'s Triton ({triton_name}) does not load {model}")
    return problems


def _weights_problems(svc: dict[str, dict[str, Any]]) -> list[str]:
    """Triton serves the model repository read-only, once `train` has written the weights into it."""
    problems = []
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


def check_models(compose: Compose) -> list[str]:
    """One GPU worker per model the pipelines name, each waiting for Triton; Triton serves trained weights."""
    svc = services(compose)
    problems = []
    served = {}
    for name, service in svc.items():
        argv = command(service)
        if argv[:3] == GPU_WORKER:
            model = argv[argv.index("--model") + 1]
            served[model] = name
            problems += _gpu_worker_problems(svc, name, service, model)
    if set(served) != load_pipelines().models():
        problems.append(f"GPU workers serve {sorted(served)}; the pipelines need {sorted(load_pipelines().models())}")
    return problems + _weights_problems(svc)


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
        if command(service)[:3] == GPU_WORKER:
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
