"""The Helm chart (deploy/helm/jobstream) rendered for the chart tests: helm itself (built on first use and
cached), `helm template` with each values file (rendered once per run), and accessors for the rendered objects."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from devstack import helm
from jobstream.settings import PROJECT_ROOT, get_settings

CHART = PROJECT_ROOT / "deploy" / "helm" / "jobstream"
SECRETS = CHART / "ci" / "secrets-values.yaml"
ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
# Each renders with the Secrets named (the chart refuses to without them).
VALUE_SETS = {
    "default": (SECRETS,),
    "gpu": (SECRETS, CHART / "values-gpu.yaml"),
    "all-features": (SECRETS, ALL_FEATURES),
    "all-features-gpu": (SECRETS, ALL_FEATURES, CHART / "values-gpu.yaml"),
    "local": (SECRETS, CHART / "values-local.yaml"),
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
# Whichever chart test runs first builds helm (`go install`, a few minutes on a cold Go module cache): each chart
# test module sets this as its timeout, more than the default limit.
HELM_BUILD_TIMEOUT_S = 900


@cache
def _helm() -> Path:
    # Built with `go install` on first use and cached like the other tools (bootstrap does not build it).
    return helm.install(get_settings().cache_dir)


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_helm()), *args], capture_output=True, text=True, timeout=120)


def template_args(values: tuple[Path, ...], *extra: str) -> list[str]:
    args = ["template", "t", str(CHART), "--namespace", "jobstream"]
    for path in values:
        args += ["-f", str(path)]
    return [*args, *extra]


@cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    done = run_helm(*template_args(VALUE_SETS[name]))
    assert done.returncode == 0, f"helm template ({name}) failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def refusal(*values: Path, **settings: str) -> str:
    """helm template's stderr for values the chart must refuse to render (failing if it renders them)."""
    extra = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    done = run_helm(*template_args(values, *extra))
    assert done.returncode != 0, "the chart rendered"
    return done.stderr


def of_kind(objects: tuple[dict[str, Any], ...], *kinds: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in kinds]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def is_jobstream(container: dict[str, Any]) -> bool:
    image: str = container["image"]
    return image.startswith("ghcr.io/jobstream/")


def environment(objects: tuple[dict[str, Any], ...], container: dict[str, Any]) -> set[str]:
    """The names of the variables a container gets, from its env and the ConfigMaps it takes whole."""
    config_maps = {obj["metadata"]["name"]: obj.get("data", {}) for obj in of_kind(objects, "ConfigMap")}
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= config_maps[source["configMapRef"]["name"]].keys()
    return names
