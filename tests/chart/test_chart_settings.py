"""The settings the Helm chart hands the processes: every field of jobstream.settings.Settings that a cluster
needs has its place in the chart, what the chart sets parses as Settings, and values-local.yaml names the cluster
profile's servers."""

from __future__ import annotations

import pytest

from devstack import cluster
from jobstream.settings import Settings
from tests.chart.chart_render import HELM_BUILD_TIMEOUT_S, environment, is_jobstream, of_kind, pod_spec, render

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
pytestmark = pytest.mark.timeout(HELM_BUILD_TIMEOUT_S)


def test_every_setting_the_services_read_is_in_the_chart() -> None:
    """Every field of jobstream.settings.Settings reaches the processes (from the settings ConfigMap, a Secret or
    the pod), unless only the local stack reads it: a new setting without its place in the chart fails here."""
    assert LOCAL_ONLY.keys() <= Settings.model_fields.keys(), "LOCAL_ONLY names a setting that no longer exists"
    objects = render("all-features")
    seen: set[str] = set()
    for workload in of_kind(objects, "Deployment", "StatefulSet"):
        for container in pod_spec(workload)["containers"]:
            if is_jobstream(container):
                seen |= environment(objects, container)
    wanted = {f"JOBSTREAM_{name.upper()}" for name in Settings.model_fields if name not in LOCAL_ONLY}
    assert not wanted - seen, f"settings the chart never sets: {sorted(wanted - seen)}"
    (provision,) = [obj for obj in of_kind(objects, "Job")]
    (container,) = pod_spec(provision)["containers"]
    assert {"JOBSTREAM_MINIO_ROOT_USER", "JOBSTREAM_MINIO_ROOT_PASSWORD"} <= environment(objects, container)


def test_the_settings_the_chart_sets_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap's values parse as Settings (a boolean, a number, a path: what the processes will read)."""
    objects = render("all-features")
    (settings,) = [obj for obj in of_kind(objects, "ConfigMap") if obj["metadata"]["name"] == "t-jobstream-settings"]
    unknown = {key for key in settings["data"] if key.removeprefix("JOBSTREAM_").lower() not in Settings.model_fields}
    assert not unknown, f"the chart sets variables no process reads: {sorted(unknown)}"
    for key, value in settings["data"].items():
        monkeypatch.setenv(key, value)
    parsed = Settings()
    assert parsed.events_replication == 3
    assert parsed.kafka_security_protocol == "SASL_SSL"


def test_values_local_points_at_the_cluster_profile() -> None:
    """values-local.yaml documents the chart against `jobstream up --cluster`: its addresses are that profile's."""
    (settings,) = [
        obj for obj in of_kind(render("local"), "ConfigMap") if obj["metadata"]["name"] == "t-jobstream-settings"
    ]
    data = settings["data"]
    assert data["JOBSTREAM_TEMPORAL_PORT"] == str(cluster.TEMPORAL_PORT)
    assert data["JOBSTREAM_MINIO_PORT"] == str(cluster.MINIO_PORT)
    ports = {int(server.rsplit(":", 1)[1]) for server in data["JOBSTREAM_KAFKA_SERVERS"].split(",")}
    assert ports == {port for _, port, _ in cluster.KAFKA_NODES}
    assert data["JOBSTREAM_PUBLIC_BRIDGE_URL"].endswith(f":{cluster.EDGE_HTTP_PORT}")
