"""The cluster profile's own processes: a Triton, two replicas each of the JobService, the SSE bridge and the CPU
worker, two GPU workers per local model, and the nginx edge in front of the JobServices and the bridges (TLS,
rate limits, passive failover). Every replica reaches the servers through the internal balancer's single
addresses and the Kafka bootstrap list, and enforces its share of a tenant's per-process limits."""

from __future__ import annotations

from devstack import certificates, cluster, nginx, stack, triton
from devstack.bootstrap import Tools
from devstack.cluster import BRIDGE_PORTS, JOB_SERVICE_PORT, JOB_SERVICE_PORTS, TRITON_PORTS, ClusterLayout
from devstack.stack import LOCAL_LIMITS, PYTHON, file_ready, grpc_serving, http_ok, local_models
from devstack.supervisor import Child
from jobstream.settings import Settings

REPLICAS = 2
# Every replica's Prometheus endpoint, counted upward from here in the order the replicas are made.
METRICS_BASE = 19460


def replica_settings(layout: ClusterLayout, base: Settings) -> Settings:
    """What every replica is configured with (as JOBSTREAM_* variables): the cluster's servers, its edge as the
    address clients are given, and how many replicas share each tenant's limits."""
    http_port, grpc_port, metrics_port = TRITON_PORTS
    return layout.settings(base).model_copy(
        update={
            "triton_http_port": http_port,
            "triton_grpc_port": grpc_port,
            "triton_metrics_port": metrics_port,
            "public_bridge_url": layout.edge.http,
            "replicas": REPLICAS,
        }
    )


def replica_environment(settings: Settings, **fields: object) -> dict[str, str]:
    names = [
        "state_dir",
        "temporal_port",
        "kafka_servers",
        "events_replication",
        "minio_port",
        "triton_http_port",
        "triton_grpc_port",
        "triton_metrics_port",
        "public_bridge_url",
        "replicas",
    ]
    values = {name: getattr(settings, name) for name in names} | fields
    return {f"JOBSTREAM_{name.upper()}": str(value) for name, value in values.items()} | LOCAL_LIMITS


def triton_child(layout: ClusterLayout, settings: Settings, tools: Tools) -> Child:
    http_port, grpc_port, metrics_port = TRITON_PORTS
    argv = triton.command(
        tools.venv,
        tools.triton_backends,
        settings.model_repository,
        layout.host,
        http_port,
        grpc_port,
        metrics_port,
        local_models(settings),
    )
    ready = http_ok(f"http://{layout.host}:{http_port}/v2/health/ready")
    ports = [(port, "") for port in TRITON_PORTS]
    return Child("triton", argv, ready, env=triton.environment(tools.venv), ports=ports, after_exit=triton.cleanup_shm)


def replicas(layout: ClusterLayout, settings: Settings) -> list[Child]:
    """Workers first, then the JobServices and the bridges (the order of an upgrade, too)."""
    metrics = iter(range(METRICS_BASE, METRICS_BASE + 100))
    models = local_models(settings)
    common = {"JOBSTREAM_MODELS": ",".join(models), "JOBSTREAM_DRILLS": "true"}
    children = []
    for number in range(1, REPLICAS + 1):
        name, port = f"cpu-worker-{number}", next(metrics)
        env = replica_environment(settings, instance=name, cpu_worker_metrics_port=port)
        ready = file_ready(name, settings)
        children.append(Child(name, [PYTHON, "-m", "workers.cpu_worker"], ready, env=env, ports=[(port, "")]))
    for model in models:
        for number in range(1, REPLICAS + 1):
            name, port = f"gpu-worker-{model}-{number}", next(metrics)
            argv = [PYTHON, "-m", "workers.gpu_worker", "--model", model, "--metrics-port", str(port)]
            env = replica_environment(settings, instance=name)
            children.append(Child(name, argv, file_ready(name, settings), env=env, ports=[(port, "")]))
    for number, grpc_port in enumerate(JOB_SERVICE_PORTS, 1):
        name, port = f"job-service-{number}", next(metrics)
        env = replica_environment(settings, instance=name, grpc_port=grpc_port, metrics_port=port) | common
        ready = grpc_serving(settings.model_copy(update={"grpc_port": grpc_port}))
        argv = [PYTHON, "-m", "services.job_service"]
        children.append(Child(name, argv, ready, env=env, ports=[(grpc_port, ""), (port, "")]))
    for number, bridge_port in enumerate(BRIDGE_PORTS, 1):
        name, port = f"sse-bridge-{number}", next(metrics)
        # The bridge's HTTP API calls the JobService: any replica, through the internal balancer.
        # Each tails the partitions it owns, the ones the edge sends their streams to.
        env = replica_environment(
            settings,
            instance=name,
            replica_index=number - 1,
            bridge_port=bridge_port,
            bridge_metrics_port=port,
            grpc_port=JOB_SERVICE_PORT,
        )
        env["JOBSTREAM_CORS_ORIGINS"] = stack.LOOPBACK_ORIGINS
        ready = http_ok(f"http://{layout.host}:{bridge_port}/healthz")
        ports = [(bridge_port, ""), (port, "")]
        children.append(Child(name, [PYTHON, "-m", "sse_bridge"], ready, env=env, ports=ports))
    return children


def edge_child(layout: ClusterLayout, settings: Settings) -> Child:
    """The edge's certificate is made once, with a CA of its own that clients are pointed at (endpoints.json)."""
    tls = layout.state_dir / "tls"
    if not (tls / "key.pem").is_file():
        certificates.issue(tls)
    prefix = layout.state_dir / "edge"
    prefix.mkdir(parents=True, exist_ok=True)
    edge = nginx.Edge(
        layout.host,
        cluster.EDGE_GRPC_PORT,
        cluster.EDGE_HTTP_PORT,
        list(JOB_SERVICE_PORTS),
        list(BRIDGE_PORTS),
        tls / "cert.pem",
        tls / "key.pem",
        settings.events_partitions,
    )
    argv = nginx.command(prefix, nginx.edge_config(prefix, edge))
    ready = http_ok(f"{layout.edge.http}/healthz", tls / "ca.pem")
    return Child("edge", argv, ready, ports=[(cluster.EDGE_GRPC_PORT, ""), (cluster.EDGE_HTTP_PORT, "")])
