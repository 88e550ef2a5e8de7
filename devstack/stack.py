"""The local stack: which processes `jobstream up` runs, in what order, and how each proves it is healthy."""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.client import Client

from devstack import kafka, minio, temporal_server, triton
from devstack.bootstrap import Tools
from devstack.supervisor import Child, Probe
from jobstream.connections import job_service_channel
from jobstream.pipelines import load_pipelines
from jobstream.readiness import is_ready
from jobstream.settings import Settings

PYTHON = sys.executable


def http_ok(url: str, ca_file: Path | None = None) -> Probe:
    async def probe(_pid: int) -> bool:
        verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        async with httpx.AsyncClient(timeout=2.0, verify=verify) as client:
            return (await client.get(url)).status_code == 200

    return probe


def temporal_ok(settings: Settings) -> Probe:
    async def probe(_pid: int) -> bool:
        client = await asyncio.wait_for(
            Client.connect(settings.temporal_address, namespace=settings.temporal_namespace), 3.0
        )
        return await client.service_client.check_health()

    return probe


def kafka_ok(settings: Settings) -> Probe:
    async def probe(_pid: int) -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=2000)
        await admin.start()
        try:
            await admin.list_topics()
            return True
        finally:
            await admin.close()

    return probe


def grpc_serving(settings: Settings) -> Probe:
    async def probe(_pid: int) -> bool:
        async with job_service_channel(settings) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return probe


def file_ready(role: str, settings: Settings) -> Probe:
    async def probe(pid: int) -> bool:
        return is_ready(role, pid, settings.state_dir)

    return probe


LOOPBACK_ORIGINS = "http://127.0.0.1:*,http://localhost:*"
# The local stack is where the load suites and the benchmark run (200 concurrent jobs, 5,000 streams of 50
# jobs): its tenants' default limits are set for that; a tenant's own in the keys file still wins.
LOCAL_LIMITS = {
    "JOBSTREAM_TENANT_MAX_RUNNING_JOBS": "1000",
    "JOBSTREAM_TENANT_MAX_STREAMS": "20000",
    "JOBSTREAM_STREAM_TOKEN_MAX_STREAMS": "1000",
    # The reliability suite's and the benchmark's bursts come from the one development tenant.
    "JOBSTREAM_TENANT_MAX_CALLS": "5000",
    # Counting bytes lists the tenant's running jobs once a second: not with the benchmark's 1,000 running.
    "JOBSTREAM_TENANT_MAX_INPUT_BYTES_IN_FLIGHT": "0",
}


def local_models(settings: Settings) -> list[str]:
    """The pipelines' models the local Triton serves (each gets a GPU worker)."""
    return triton.local_models(settings.model_repository, load_pipelines().models())


def servers(settings: Settings, tools: Tools) -> list[Child]:
    """The four real servers, in the order they must start."""
    state = settings.state_dir
    host = settings.host
    kafka_props = kafka.prepare(
        tools.kafka_libs, state / "kafka", host, settings.kafka_port, settings.kafka_controller_port
    )
    return [
        Child(
            "temporal",
            temporal_server.command(tools.temporal, settings),
            temporal_ok(settings),
            ports=[
                (settings.temporal_port, "JOBSTREAM_TEMPORAL_PORT"),
                (settings.temporal_ui_port, "JOBSTREAM_TEMPORAL_UI_PORT"),
            ],
        ),
        Child(
            "minio",
            minio.command(tools.minio, settings),
            http_ok(f"http://{settings.minio_endpoint}/minio/health/live"),
            env=minio.environment(settings),
            ports=[
                (settings.minio_port, "JOBSTREAM_MINIO_PORT"),
                (settings.minio_console_port, "JOBSTREAM_MINIO_CONSOLE_PORT"),
            ],
        ),
        Child(
            "kafka",
            kafka.command(tools.kafka_libs, kafka_props, settings.kafka_heap_mb),
            kafka_ok(settings),
            ports=[
                (settings.kafka_port, "JOBSTREAM_KAFKA_PORT"),
                (settings.kafka_controller_port, "JOBSTREAM_KAFKA_CONTROLLER_PORT"),
            ],
            ready_timeout_s=90.0,
        ),
        Child(
            "triton",
            triton.command(
                tools.venv,
                tools.triton_backends,
                settings.model_repository,
                host,
                settings.triton_http_port,
                settings.triton_grpc_port,
                settings.triton_metrics_port,
                local_models(settings),
            ),
            http_ok(f"http://{host}:{settings.triton_http_port}/v2/health/ready"),
            env=triton.environment(tools.venv),
            ports=[
                (settings.triton_http_port, "JOBSTREAM_TRITON_HTTP_PORT"),
                (settings.triton_grpc_port, "JOBSTREAM_TRITON_GRPC_PORT"),
                (settings.triton_metrics_port, "JOBSTREAM_TRITON_METRICS_PORT"),
            ],
            after_exit=triton.cleanup_shm,
        ),
    ]


def gpu_worker_metrics_ports(settings: Settings) -> dict[str, int]:
    """Each local model's GPU worker's metrics port: from the first, upward in model order."""
    return {model: settings.gpu_worker_metrics_port + index for index, model in enumerate(local_models(settings))}


def services(settings: Settings) -> list[Child]:
    """jobstream's own processes; each command line names its role for `ps`."""
    children = [
        Child(
            "job-service",
            [PYTHON, "-m", "services.job_service"],
            grpc_serving(settings),
            # A pipeline whose model this machine cannot run is refused at submit, not left queued.
            # The fault drills are for rehearsing failures, which the local stack and its tests are for.
            env={"JOBSTREAM_MODELS": ",".join(local_models(settings)), "JOBSTREAM_DRILLS": "true", **LOCAL_LIMITS},
            ports=[(settings.grpc_port, "JOBSTREAM_GRPC_PORT"), (settings.metrics_port, "JOBSTREAM_METRICS_PORT")],
        ),
        Child(
            "cpu-worker",
            [PYTHON, "-m", "workers.cpu_worker"],
            file_ready("cpu-worker", settings),
            # Webhooks to loopback receivers (a front end's development server, the tests').
            env={"JOBSTREAM_WEBHOOKS_ALLOW_PRIVATE": "true"},
            ports=[(settings.cpu_worker_metrics_port, "JOBSTREAM_CPU_WORKER_METRICS_PORT")],
        ),
    ]
    for model, port in gpu_worker_metrics_ports(settings).items():
        role = f"gpu-worker-{model}"
        argv = [PYTHON, "-m", "workers.gpu_worker", "--model", model, "--metrics-port", str(port)]
        children.append(
            Child(role, argv, file_ready(role, settings), ports=[(port, "JOBSTREAM_GPU_WORKER_METRICS_PORT")])
        )
    children.append(
        Child(
            "sse-bridge",
            [PYTHON, "-m", "sse_bridge"],
            http_ok(f"{settings.local_bridge_url}/healthz", settings.server_ca_file),
            # A front end's development server on any loopback port may call the local stack.
            env={"JOBSTREAM_CORS_ORIGINS": settings.cors_origins or LOOPBACK_ORIGINS, **LOCAL_LIMITS},
            ports=[
                (settings.bridge_port, "JOBSTREAM_BRIDGE_PORT"),
                (settings.bridge_metrics_port, "JOBSTREAM_BRIDGE_METRICS_PORT"),
            ],
        )
    )
    return children
