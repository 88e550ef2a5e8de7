"""The Helm chart (deploy/helm/jobstream), checked offline the way a chart's CI checks one: `helm lint --strict`,
`helm template` with each values file, and every rendered object against Kubernetes' own OpenAPI schemas
(kubernetes-validate, strict: an unknown field fails) for two Kubernetes versions. No cluster is needed, and
none is used: what only a cluster can check is listed in the README's "On Kubernetes". Here: lint, the schemas,
and the workloads the chart renders; the settings it carries are in test_chart_settings.py, what it refuses to
render in test_chart_refusals.py."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.chart.chart_render import (
    CHART,
    HELM_BUILD_TIMEOUT_S,
    VALUE_SETS,
    WORKLOAD_KINDS,
    containers,
    of_kind,
    pod_spec,
    render,
    run_helm,
)
from workers.worker_process import GRACEFUL_SHUTDOWN

KUBERNETES_VERSIONS = ("1.30.0", "1.34.0")
# Kinds of the Prometheus operator's CRDs: no Kubernetes schema; checked against alerts.yaml below.
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}
pytestmark = pytest.mark.timeout(HELM_BUILD_TIMEOUT_S)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_strict(name: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in VALUE_SETS[name]:
        args += ["-f", str(path)]
    done = run_helm(*args)
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
    workloads = {obj["metadata"]["name"].removeprefix("t-jobstream-"): obj for obj in of_kind(objects, *WORKLOAD_KINDS)}
    assert workloads["sse-bridge"]["kind"] == "StatefulSet"
    expected = {"job-service", "cpu-worker", "gpu-worker-tinylm", "gpu-worker-keywords", "gpu-worker-opt125m"}
    assert expected <= workloads.keys()
    assert {"triton-cpu", "triton-vllm"} <= workloads.keys()
    (triton,) = pod_spec(workloads["triton-vllm"])["containers"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    provision = workloads["provision"]
    assert provision["kind"] == "Job"
    assert "pre-install" in provision["metadata"]["annotations"]["helm.sh/hook"]
    hpas = {obj["spec"]["scaleTargetRef"]["name"] for obj in of_kind(objects, "HorizontalPodAutoscaler")}
    assert hpas == {"t-jobstream-job-service", "t-jobstream-sse-bridge"}
    budgets = {obj["metadata"]["name"] for obj in of_kind(objects, "PodDisruptionBudget")}
    long_running = {obj["metadata"]["name"] for obj in of_kind(objects, "Deployment", "StatefulSet")}
    assert budgets == long_running


@pytest.mark.parametrize("name", ["default", "all-features-gpu"])
def test_every_container_is_locked_down(name: str) -> None:
    problems = []
    for workload in of_kind(render(name), *WORKLOAD_KINDS):
        where = workload["metadata"]["name"]
        if not pod_spec(workload)["securityContext"].get("runAsNonRoot"):
            problems.append(f"{where}: pod may run as root")
        for container in containers(workload):
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
    for workload in of_kind(render(name), "Deployment", "StatefulSet"):
        for container in pod_spec(workload)["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert probe in container, f"{workload['metadata']['name']}/{container['name']} has no {probe}"


def test_with_tls_the_probes_speak_tls() -> None:
    """kubelet's gRPC probe cannot speak TLS: with TLS on, the JobService is probed by the image's health check
    (which trusts the server CA), and the bridge's /healthz over HTTPS."""
    for obj in of_kind(render("all-features"), "Deployment", "StatefulSet"):
        (container,) = pod_spec(obj)["containers"]
        probe = container["readinessProbe"]
        if obj["metadata"]["name"].endswith("job-service"):
            assert probe["exec"]["command"][-1] == "job-service"
        if obj["metadata"]["name"].endswith("sse-bridge"):
            assert probe["httpGet"]["scheme"] == "HTTPS"


def test_workers_roll_out_before_the_job_service() -> None:
    """The README's upgrade rule: a workflow change must reach the workers before any JobService starts it."""
    objects = render("gpu")
    workers = {obj["metadata"]["name"] for obj in of_kind(objects, "Deployment") if "worker" in obj["metadata"]["name"]}
    (job_service,) = [obj for obj in of_kind(objects, "Deployment") if obj["metadata"]["name"].endswith("job-service")]
    (wait,) = pod_spec(job_service)["initContainers"]
    waited = {arg.removeprefix("deployment/") for arg in wait["command"] if arg.startswith("deployment/")}
    assert wait["command"][:3] == ["kubectl", "rollout", "status"]
    assert waited == workers


def test_termination_leaves_each_process_its_drain() -> None:
    for workload in of_kind(render("default"), "Deployment", "StatefulSet"):
        grace = pod_spec(workload)["terminationGracePeriodSeconds"]
        if "worker" in workload["metadata"]["name"]:
            # Running activities get GRACEFUL_SHUTDOWN to finish, then the worker closes its clients.
            assert grace >= 2 * GRACEFUL_SHUTDOWN.total_seconds(), workload["metadata"]["name"]
        assert grace >= 15, workload["metadata"]["name"]


def test_the_prometheus_rule_is_the_alerts_file() -> None:
    """One rules file: compose's Prometheus loads it, the chart renders it as a PrometheusRule."""
    (rule,) = of_kind(render("all-features"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts
    (monitor,) = of_kind(render("all-features"), "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"]
    assert not of_kind(render("default"), "PrometheusRule", "PodMonitor"), "the CRDs are opt-in"
