"""The Helm chart (deploy/helm/jobstream), checked offline the way a chart's CI checks one: `helm lint --strict`,
`helm template` with each values file, and every rendered object against Kubernetes' own OpenAPI schemas
(kubernetes-validate, strict: an unknown field fails) for two Kubernetes versions. No cluster is needed, and
none is used: what only a cluster can check is listed in the README's "On Kubernetes"."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from devstack import cluster, helm
from jobstream.settings import DEVELOPMENT_SECRETS, PROJECT_ROOT, Settings, get_settings
from workers.worker_process import GRACEFUL_SHUTDOWN

CHART = PROJECT_ROOT / "deploy" / "helm" / "jobstream"
SECRETS = CHART / "ci" / "secrets-values.yaml"
ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
# Each renders with the Secrets named (the chart refuses to without them).
VALUE_SETS = {
    "default": (SECRETS,),
    "gpu": (SECRETS, CHART / "values-gpu.yaml"),
    "all-features": (SECRETS, ALL_FEATURES),
    "all-features-gpu": (SECRETS, ALL_FEATURES, CHART / "values-gpu.yaml"),
    "local": (SECRETS, CHART / "values-local.yaml"),
}
# Kinds of the Prometheus operator's CRDs: no Kubernetes schema; checked against alerts.yaml below.
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}
# Settings that only the local stack reads (it starts the servers itself), with why a cluster has no use for them.
LOCAL_ONLY = {
    "host": "the loopback address the local stack's processes dial each other on; the chart names each server",
    "temporal_ui_port": "the local Temporal dev server's web UI",
    "temporal_dynamic_config": "the local Temporal server's configuration file",
    "temporal_sqlite_pragmas": "the local Temporal server's SQLite tuning",
    "kafka_host": "the local broker's listener; services read KAFKA_SERVERS",
    "kafka_port": "the local broker's listener; services read KAFKA_SERVERS",
    "kafka_controller_port": "the local broker's KRaft controller",
    "kafka_heap_mb": "the local broker's JVM heap",
    "minio_console_port": "the local MinIO's console",
    "minio_root_user": "provisioning only (from secrets.objectStoreRoot): no service holds MinIO's root user",
    "minio_root_password": "provisioning only (from secrets.objectStoreRoot): no service holds MinIO's root user",
    "triton_metrics_port": "the local Triton's metrics; in the chart, Triton's own flag and Service",
    "cache_dir": "where bootstrap caches the local servers' binaries",
    "model_repository": "the local Triton's model repository; in the chart, copied from the image by Triton's init",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
# The first test builds helm (`go install`, a few minutes on a cold Go module cache): more than the default limit.
pytestmark = pytest.mark.timeout(900)


@cache
def _helm() -> Path:
    # Built with `go install` on first use and cached like the other tools (bootstrap does not build it).
    return helm.install(get_settings().cache_dir)


def _run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_helm()), *args], capture_output=True, text=True, timeout=120)


def _template_args(values: tuple[Path, ...], *extra: str) -> list[str]:
    args = ["template", "t", str(CHART), "--namespace", "jobstream"]
    for path in values:
        args += ["-f", str(path)]
    return [*args, *extra]


@cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    done = _run_helm(*_template_args(VALUE_SETS[name]))
    assert done.returncode == 0, f"helm template ({name}) failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def _of_kind(objects: tuple[dict[str, Any], ...], *kinds: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in kinds]


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = _pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _is_jobstream(container: dict[str, Any]) -> bool:
    image: str = container["image"]
    return image.startswith("ghcr.io/jobstream/")


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_strict(name: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in VALUE_SETS[name]:
        args += ["-f", str(path)]
    done = _run_helm(*args)
    assert done.returncode == 0, f"helm lint --strict ({name}):\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_matches_the_kubernetes_schema(name: str, version: str) -> None:
    problems = []
    for obj in render(name):
        if obj["kind"] in OPERATOR_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{obj['kind']} {obj['metadata']['name']}: {error.message} at {list(error.path)}")
    assert not problems, "\n".join(problems)


def test_the_topology_is_the_cluster_profile() -> None:
    """The JobService and the bridge behind autoscalers and disruption budgets; a CPU worker and a GPU worker per
    model; Triton per model group; provisioning as a hook; a GPU group asks for a GPU."""
    objects = render("gpu")
    workloads = {
        obj["metadata"]["name"].removeprefix("t-jobstream-"): obj for obj in _of_kind(objects, *WORKLOAD_KINDS)
    }
    assert workloads["sse-bridge"]["kind"] == "StatefulSet"
    expected = {"job-service", "cpu-worker", "gpu-worker-tinylm", "gpu-worker-keywords", "gpu-worker-opt125m"}
    assert expected <= workloads.keys()
    assert {"triton-cpu", "triton-vllm"} <= workloads.keys()
    (triton,) = _pod_spec(workloads["triton-vllm"])["containers"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    provision = workloads["provision"]
    assert provision["kind"] == "Job"
    assert "pre-install" in provision["metadata"]["annotations"]["helm.sh/hook"]
    hpas = {obj["spec"]["scaleTargetRef"]["name"] for obj in _of_kind(objects, "HorizontalPodAutoscaler")}
    assert hpas == {"t-jobstream-job-service", "t-jobstream-sse-bridge"}
    budgets = {obj["metadata"]["name"] for obj in _of_kind(objects, "PodDisruptionBudget")}
    long_running = {obj["metadata"]["name"] for obj in _of_kind(objects, "Deployment", "StatefulSet")}
    assert budgets == long_running


@pytest.mark.parametrize("name", ["default", "all-features-gpu"])
def test_every_container_is_locked_down(name: str) -> None:
    problems = []
    for workload in _of_kind(render(name), *WORKLOAD_KINDS):
        where = workload["metadata"]["name"]
        if not _pod_spec(workload)["securityContext"].get("runAsNonRoot"):
            problems.append(f"{where}: pod may run as root")
        for container in _containers(workload):
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}/{container['name']}: writable root filesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}/{container['name']}: privilege escalation allowed")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}/{container['name']}: capabilities not dropped")
            resources = container.get("resources", {})
            if not {"cpu", "memory"} <= resources.get("requests", {}).keys() or "memory" not in resources.get(
                "limits", {}
            ):
                problems.append(f"{where}/{container['name']}: no CPU and memory request or no memory limit")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["default", "all-features"])
def test_every_long_running_process_is_probed(name: str) -> None:
    for workload in _of_kind(render(name), "Deployment", "StatefulSet"):
        for container in _pod_spec(workload)["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert probe in container, f"{workload['metadata']['name']}/{container['name']} has no {probe}"


def test_with_tls_the_probes_speak_tls() -> None:
    """kubelet's gRPC probe cannot speak TLS: with TLS on, the JobService is probed by the image's health check
    (which trusts the server CA), and the bridge's /healthz over HTTPS."""
    for obj in _of_kind(render("all-features"), "Deployment", "StatefulSet"):
        (container,) = _pod_spec(obj)["containers"]
        probe = container["readinessProbe"]
        if obj["metadata"]["name"].endswith("job-service"):
            assert probe["exec"]["command"][-1] == "job-service"
        if obj["metadata"]["name"].endswith("sse-bridge"):
            assert probe["httpGet"]["scheme"] == "HTTPS"


def test_workers_roll_out_before_the_job_service() -> None:
    """The README's upgrade rule: a workflow change must reach the workers before any JobService starts it."""
    objects = render("gpu")
    workers = {
        obj["metadata"]["name"] for obj in _of_kind(objects, "Deployment") if "worker" in obj["metadata"]["name"]
    }
    (job_service,) = [obj for obj in _of_kind(objects, "Deployment") if obj["metadata"]["name"].endswith("job-service")]
    (wait,) = _pod_spec(job_service)["initContainers"]
    waited = {arg.removeprefix("deployment/") for arg in wait["command"] if arg.startswith("deployment/")}
    assert wait["command"][:3] == ["kubectl", "rollout", "status"]
    assert waited == workers


def test_termination_leaves_each_process_its_drain() -> None:
    for workload in _of_kind(render("default"), "Deployment", "StatefulSet"):
        grace = _pod_spec(workload)["terminationGracePeriodSeconds"]
        if "worker" in workload["metadata"]["name"]:
            # Running activities get GRACEFUL_SHUTDOWN to finish, then the worker closes its clients.
            assert grace >= 2 * GRACEFUL_SHUTDOWN.total_seconds(), workload["metadata"]["name"]
        assert grace >= 15, workload["metadata"]["name"]


def _environment(objects: tuple[dict[str, Any], ...], container: dict[str, Any]) -> set[str]:
    config_maps = {obj["metadata"]["name"]: obj.get("data", {}) for obj in _of_kind(objects, "ConfigMap")}
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= config_maps[source["configMapRef"]["name"]].keys()
    return names


def test_every_setting_the_services_read_is_in_the_chart() -> None:
    """Every field of jobstream.settings.Settings reaches the processes (from the settings ConfigMap, a Secret or
    the pod), unless only the local stack reads it: a new setting without its place in the chart fails here."""
    assert LOCAL_ONLY.keys() <= Settings.model_fields.keys(), "LOCAL_ONLY names a setting that no longer exists"
    objects = render("all-features")
    seen: set[str] = set()
    for workload in _of_kind(objects, "Deployment", "StatefulSet"):
        for container in _pod_spec(workload)["containers"]:
            if _is_jobstream(container):
                seen |= _environment(objects, container)
    wanted = {f"JOBSTREAM_{name.upper()}" for name in Settings.model_fields if name not in LOCAL_ONLY}
    assert not wanted - seen, f"settings the chart never sets: {sorted(wanted - seen)}"
    (provision,) = [obj for obj in _of_kind(objects, "Job")]
    (container,) = _pod_spec(provision)["containers"]
    assert {"JOBSTREAM_MINIO_ROOT_USER", "JOBSTREAM_MINIO_ROOT_PASSWORD"} <= _environment(objects, container)


def test_the_settings_the_chart_sets_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap's values parse as Settings (a boolean, a number, a path: what the processes will read)."""
    objects = render("all-features")
    (settings,) = [obj for obj in _of_kind(objects, "ConfigMap") if obj["metadata"]["name"] == "t-jobstream-settings"]
    unknown = {key for key in settings["data"] if key.removeprefix("JOBSTREAM_").lower() not in Settings.model_fields}
    assert not unknown, f"the chart sets variables no process reads: {sorted(unknown)}"
    for key, value in settings["data"].items():
        monkeypatch.setenv(key, value)
    parsed = Settings()
    assert parsed.events_replication == 3
    assert parsed.kafka_security_protocol == "SASL_SSL"


def test_the_prometheus_rule_is_the_alerts_file() -> None:
    """One rules file: compose's Prometheus loads it, the chart renders it as a PrometheusRule."""
    (rule,) = _of_kind(render("all-features"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts
    (monitor,) = _of_kind(render("all-features"), "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"]
    assert not _of_kind(render("default"), "PrometheusRule", "PodMonitor"), "the CRDs are opt-in"


def _refusal(*values: Path, **settings: str) -> str:
    extra = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    done = _run_helm(*_template_args(values, *extra))
    assert done.returncode != 0, "the chart rendered"
    return done.stderr


def test_without_named_secrets_the_chart_refuses() -> None:
    assert "secrets.streamToken.name" in _refusal()


def test_a_secret_given_inline_is_refused() -> None:
    stderr = _refusal(SECRETS, **{"settings.STREAM_TOKEN_SECRET": "s3cret-s3cret-s3cret"})
    assert "settings.STREAM_TOKEN_SECRET: a secret is never a value" in stderr


def test_sasl_needs_its_secret() -> None:
    assert "secrets.kafkaSasl.name" in _refusal(SECRETS, **{"kafka.securityProtocol": "SASL_SSL"})


def test_tls_to_the_charts_own_triton_needs_its_certificate() -> None:
    assert "secrets.tritonTls.name" in _refusal(SECRETS, **{"triton.ssl": "true"})
    (triton,) = [
        obj for obj in _of_kind(render("all-features"), "Deployment") if obj["metadata"]["name"].endswith("triton-cpu")
    ]
    (container,) = _pod_spec(triton)["containers"]
    assert "--grpc-use-ssl=true" in container["command"]


def test_the_chart_knows_every_development_secret() -> None:
    """At install (`lookup` reads the named Secrets) the chart refuses the secrets this repository publishes;
    the list in the template must follow jobstream.settings."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert all(f'"{secret}"' in helpers for secret in DEVELOPMENT_SECRETS)


def test_values_local_points_at_the_cluster_profile() -> None:
    """values-local.yaml documents the chart against `jobstream up --cluster`: its addresses are that profile's."""
    (settings,) = [
        obj for obj in _of_kind(render("local"), "ConfigMap") if obj["metadata"]["name"] == "t-jobstream-settings"
    ]
    data = settings["data"]
    assert data["JOBSTREAM_TEMPORAL_PORT"] == str(cluster.TEMPORAL_PORT)
    assert data["JOBSTREAM_MINIO_PORT"] == str(cluster.MINIO_PORT)
    ports = {int(server.rsplit(":", 1)[1]) for server in data["JOBSTREAM_KAFKA_SERVERS"].split(",")}
    assert ports == {port for _, port, _ in cluster.KAFKA_NODES}
    assert data["JOBSTREAM_PUBLIC_BRIDGE_URL"].endswith(f":{cluster.EDGE_HTTP_PORT}")
