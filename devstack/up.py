"""`jobstream up`: build what is missing, start the whole stack in the foreground, stop it cleanly."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import time

from devstack import bootstrap, cluster, cluster_services, nginx, postgres, provision, stack, temporal_cluster
from devstack.stack import gpu_worker_metrics_ports
from devstack.supervisor import Child, PortInUseError, StartError, Supervisor
from jobstream.auth import ensure_dev_key
from jobstream.settings import Settings, get_settings
from jobstream.stream_tokens import signing_secret


def metrics_urls(settings: Settings) -> str:
    """Every process's Prometheus endpoint: JobService, CPU worker, one per GPU worker, the bridge, Triton."""
    host = settings.host
    ports = [settings.metrics_port, settings.cpu_worker_metrics_port, settings.bridge_metrics_port]
    ports += gpu_worker_metrics_ports(settings).values()
    urls = [f"http://{host}:{port}/metrics" for port in ports]
    urls += [f"http://{host}:{settings.triton_metrics_port}/metrics"]
    return "   ".join(urls)


def banner(settings: Settings, api_key: str) -> str:
    host = settings.host
    return "\n".join(
        [
            "jobstream is up:",
            f"  JobService (gRPC)   {settings.grpc_target}",
            f"  live page           {settings.bridge_url}/#key={api_key}",
            f"  HTTP API + SSE      {settings.bridge_url}/v1/jobs   {settings.bridge_url}/v1/jobs/{{job_id}}/events",
            f"  Temporal            {settings.temporal_address}   Web UI http://{host}:{settings.temporal_ui_port}",
            f"  Kafka               {settings.kafka_bootstrap}   topic {settings.events_topic}",
            f"  MinIO               http://{settings.minio_endpoint}   console "
            f"http://{host}:{settings.minio_console_port} ({settings.minio_root_user})",
            f"  Triton              http://{host}:{settings.triton_http_port}   gRPC {settings.triton_grpc_url}",
            f"  metrics             {metrics_urls(settings)}",
            f"  logs                {settings.logs_dir}",
            f"  development API key {api_key}",
            "Try:",
            f"  grpcurl -plaintext {settings.grpc_target} list",
            f'  grpcurl -plaintext -H "authorization: Bearer {api_key}" '
            f'-d \'{{"prompt": "It is a truth"}}\' {settings.grpc_target} jobstream.v1.JobService/SubmitJob',
            f'  curl -i -H "Authorization: Bearer {api_key}" -d \'{{"prompt": "It is a truth"}}\' '
            f"{settings.bridge_url}/v1/jobs",
            "Ctrl-C stops everything.",
        ]
    )


async def run(fresh: bool) -> int:
    settings = get_settings()
    started = time.monotonic()
    # Health probes expect refused connections while servers boot; aiokafka would log each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if fresh and settings.state_dir.exists():
        shutil.rmtree(settings.state_dir)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    tools = bootstrap.ensure(settings, quiet=True)
    api_key = ensure_dev_key(settings)

    pids_file = settings.state_dir / "run" / "children.pids"
    pids_file.parent.mkdir(parents=True, exist_ok=True)
    pids_file.write_text("")
    supervisor = Supervisor(settings.host, settings.logs_dir, pids_file=pids_file)
    servers = stack.servers(settings, tools)
    services = stack.services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    try:
        supervisor.check_ports(servers + services)
        print("starting Temporal, MinIO, Kafka and Triton ...", flush=True)
        await _start_all(supervisor, servers, stop)
        await provision.provision(settings)
        print("starting JobService, workers and SSE bridge ...", flush=True)
        await _start_all(supervisor, services, stop)
    except PortInUseError as exc:
        print(f"jobstream up: {exc}", flush=True)
        return 1
    except (StartError, _Interrupted) as exc:
        print(f"jobstream up: {exc}", flush=True)
        await supervisor.stop()
        return 0 if isinstance(exc, _Interrupted) else 1
    print(f"ready in {time.monotonic() - started:.1f}s", flush=True)
    print(banner(settings, api_key), flush=True)
    await stop.wait()
    print("stopping ...", flush=True)
    await supervisor.stop()
    print("stopped", flush=True)
    return 0


async def run_cluster(fresh: bool) -> int:
    """`jobstream up --cluster`: the cluster profile (devstack/cluster.py, devstack/cluster_services.py)."""
    base = get_settings()
    layout = cluster.ClusterLayout.of(base)
    started = time.monotonic()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the probes meet refused connections while nodes boot
    if fresh and layout.state_dir.exists():
        shutil.rmtree(layout.state_dir)
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    print("building what the cluster needs (Temporal's server and nginx, once) ...", flush=True)
    tools = await asyncio.to_thread(bootstrap.ensure, base, quiet=True)
    pg_bin = await asyncio.to_thread(postgres.install)
    await asyncio.to_thread(nginx.install)
    server, sql_tool = await asyncio.to_thread(temporal_cluster.install, base.cache_dir)
    settings = cluster_services.replica_settings(layout, base)
    api_key = ensure_dev_key(settings)
    signing_secret(settings)  # made once here, not raced for by the replicas
    pids_file = layout.state_dir / "run" / "children.pids"
    pids_file.parent.mkdir(parents=True, exist_ok=True)
    pids_file.write_text("")
    supervisor = Supervisor(base.host, layout.state_dir / "logs", pids_file=pids_file)
    database = cluster.postgres_child(layout, pg_bin)
    temporal = cluster.temporal_children(layout, server)
    brokers = cluster.kafka_children(layout, tools.kafka_libs)
    stores = cluster.minio_children(layout, tools.minio, base)
    balancer = cluster.balancer_child(layout)
    inference = cluster_services.triton_child(layout, settings, tools)
    replicas = cluster_services.replicas(layout, settings)
    edge = cluster_services.edge_child(layout, settings)
    everything = [database, *brokers, *stores, inference, balancer, *temporal, *replicas, edge]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        supervisor.check_ports(everything)
        print(f"starting PostgreSQL, Kafka ({len(brokers)} nodes), MinIO ({len(stores)}) and Triton ...", flush=True)
        await _start_all(supervisor, [database, *brokers, *stores, inference], stop)
        await _start_all(supervisor, [balancer], stop)
        await cluster.provision_kafka(layout, settings)
        await asyncio.to_thread(provision.provision_store, settings)
        await asyncio.to_thread(temporal_cluster.setup_schemas, sql_tool, base.host, cluster.POSTGRES_PORT)
        print(f"starting Temporal ({len(temporal)} nodes) ...", flush=True)
        for node in temporal:  # one at a time: on a fresh database each would race to write the cluster's record
            await _start_all(supervisor, [node], stop)
        await cluster.provision_temporal(layout, settings)
        print(f"starting jobstream ({len(replicas)} replicas) and the edge ...", flush=True)
        await _start_all(supervisor, replicas, stop)
        await _start_all(supervisor, [edge], stop)
    except PortInUseError as exc:
        print(f"jobstream up --cluster: {exc}", flush=True)
        return 1
    except (StartError, _Interrupted) as exc:
        print(f"jobstream up --cluster: {exc}", flush=True)
        await supervisor.stop()
        return 0 if isinstance(exc, _Interrupted) else 1
    roles = [child.name for child in everything]
    endpoints = cluster.write_endpoints(layout, supervisor, roles, api_key)

    # A restarted process has a new pid: the file always names the live one.
    def refresh(_role: str) -> None:
        cluster.write_endpoints(layout, supervisor, roles, api_key)

    supervisor.on_spawn = refresh
    print(f"ready in {time.monotonic() - started:.1f}s", flush=True)
    print(cluster.describe(endpoints), flush=True)
    await stop.wait()
    print("stopping ...", flush=True)
    await supervisor.stop()
    print("stopped", flush=True)
    return 0


class _Interrupted(Exception):
    pass


async def _start_all(supervisor: Supervisor, children: list[Child], stop: asyncio.Event) -> None:
    """Start independent children together; a signal during start-up aborts it."""
    starting = asyncio.ensure_future(_start_group(supervisor, children))
    stopped = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if starting in done:
        stopped.cancel()
        starting.result()
        return
    starting.cancel()
    await asyncio.gather(starting, return_exceptions=True)
    raise _Interrupted("interrupted during start-up; stopped what had started")


async def _start_group(supervisor: Supervisor, children: list[Child]) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            for child in children:
                group.create_task(supervisor.start(child))
    except ExceptionGroup as group_error:
        # One failure cancels the siblings; report the first cause, not the group.
        raise group_error.exceptions[0] from None
