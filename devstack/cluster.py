"""`jobstream up --cluster` (issue 19): jobstream on the real distributed engines, beside the single-node stack
(own state under STATE_DIR/cluster/, own ports): Temporal's own server as two nodes on PostgreSQL 15, three
KRaft Kafka nodes, four MinIO servers erasure-coding one bucket, an internal nginx giving Temporal and MinIO
one address each. devstack/cluster_services.py adds jobstream's replicas and the nginx edge in front of them.

Its processes are found through STATE_DIR/cluster/endpoints.json, by role name, never by `ps` patterns."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client

from devstack import kafka, minio, nginx, postgres, provision, temporal_cluster
from devstack.cluster_endpoints import Endpoints
from devstack.service_set import register_namespace
from devstack.stack import http_ok
from devstack.supervisor import Child, Probe, Supervisor
from devstack.temporal_server import DEV_SERVER_CONFIG
from jobstream.keys_store import keys_file
from jobstream.settings import Settings, get_settings

# Well away from the single-node stack's ports (7233, 9092, 9000, 8000-8002, 8080, 50051, 946x).
POSTGRES_PORT = 15432
TEMPORAL_NODE_BASES = (17300, 17310)
# Three KRaft nodes, each broker and controller: (node id, client port, controller port).
KAFKA_NODES = ((1, 19092, 19192), (2, 19093, 19193), (3, 19094, 19194))
# Four MinIO servers, one drive each: (S3 port, console port).
MINIO_NODES = ((19000, 19010), (19001, 19011), (19002, 19012), (19003, 19013))
# The internal balancer's single addresses for the Temporal nodes and the MinIO servers.
TEMPORAL_PORT = 17233
MINIO_PORT = 19100
# The replicas of jobstream's own servers, and the internal balancer's address for the JobService's.
JOB_SERVICE_PORTS = (15051, 15052)
JOB_SERVICE_PORT = 15050
BRIDGE_PORTS = (18081, 18082)
TRITON_PORTS = (18000, 18001, 18002)  # HTTP, gRPC, metrics
EDGE_GRPC_PORT = 18443
EDGE_HTTP_PORT = 18080


@dataclass(frozen=True)
class EdgeAddresses:
    grpc: str  # host:port, TLS
    http: str  # https:// base URL
    ca_file: Path


@dataclass(frozen=True)
class ClusterLayout:
    state_dir: Path
    host: str
    namespace: str

    @classmethod
    def of(cls, settings: Settings) -> ClusterLayout:
        return cls(settings.state_dir / "cluster", settings.host, settings.temporal_namespace)

    @property
    def temporal_addresses(self) -> list[str]:
        return [f"{self.host}:{temporal_cluster.frontend_port(base)}" for base in TEMPORAL_NODE_BASES]

    @property
    def kafka_servers(self) -> str:
        return ",".join(f"{self.host}:{port}" for _, port, _ in KAFKA_NODES)

    @property
    def temporal_address(self) -> str:
        return f"{self.host}:{TEMPORAL_PORT}"

    @property
    def edge(self) -> EdgeAddresses:
        tls = self.state_dir / "tls"
        return EdgeAddresses(f"{self.host}:{EDGE_GRPC_PORT}", f"https://{self.host}:{EDGE_HTTP_PORT}", tls / "ca.pem")

    @property
    def minio_endpoint(self) -> str:
        return f"{self.host}:{MINIO_PORT}"

    def settings(self, base: Settings) -> Settings:
        """`base` pointed at the cluster's servers: what provisioning uses, and what every replica is given."""
        return base.model_copy(update=self.server_settings())

    def server_settings(self) -> dict[str, object]:
        return {
            "state_dir": self.state_dir,
            "temporal_port": TEMPORAL_PORT,
            "kafka_servers": self.kafka_servers,
            "events_replication": len(KAFKA_NODES),
            "minio_port": MINIO_PORT,
        }

    @property
    def endpoints_file(self) -> Path:
        return self.state_dir / "endpoints.json"


def postgres_ready(layout: ClusterLayout, bin_dir: Path) -> Probe:
    async def probe(_pid: int) -> bool:
        return await asyncio.to_thread(postgres.ready, bin_dir, layout.host, POSTGRES_PORT)

    return probe


def frontend_serving(address: str) -> Probe:
    async def probe(_pid: int) -> bool:
        client = await asyncio.wait_for(Client.connect(address), 3.0)
        return await client.service_client.check_health()

    return probe


def postgres_child(layout: ClusterLayout, bin_dir: Path) -> Child:
    data = layout.state_dir / "postgres"
    postgres.init_data(bin_dir, data)
    argv = postgres.command(bin_dir, data, layout.host, POSTGRES_PORT)
    return Child("postgres", argv, postgres_ready(layout, bin_dir), ports=[(POSTGRES_PORT, "")])


def temporal_children(layout: ClusterLayout, server: Path) -> list[Child]:
    """One `server start` per node, all four services each; node 1's frontend is the cluster's own address."""
    children = []
    for number, base in enumerate(TEMPORAL_NODE_BASES, 1):
        root = layout.state_dir / f"temporal-{number}"
        config = temporal_cluster.node_config(layout.host, base, POSTGRES_PORT, layout.temporal_addresses[0])
        temporal_cluster.write_node(root, config, DEV_SERVER_CONFIG)
        address = layout.temporal_addresses[number - 1]
        ports = [(base + offset, "") for offset in temporal_cluster.PORT_OFFSETS.values()]
        child = Child(
            f"temporal-{number}", temporal_cluster.node_command(server, root), frontend_serving(address), ports=ports
        )
        children.append(child)
    return children


async def provision_temporal(layout: ClusterLayout, settings: Settings) -> None:
    """The namespace (a real server has none until someone creates it) and jobstream's search attributes in
    it, asked of every node in turn, so that each has seen them before anything uses it."""
    nodes = [
        settings.model_copy(
            update={"temporal_host": layout.host, "temporal_port": temporal_cluster.frontend_port(base)}
        )
        for base in TEMPORAL_NODE_BASES
    ]
    await register_namespace(nodes[0])
    for node in nodes[1:]:
        await provision.register_search_attributes(node)


def kafka_node_ready(host: str, port: int) -> Probe:
    async def probe(_pid: int) -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=2000)
        await admin.start()
        try:
            # Ready once this node knows the whole quorum's brokers, not just itself.
            return len((await admin.describe_cluster())["brokers"]) == len(KAFKA_NODES)
        finally:
            await admin.close()

    return probe


def kafka_children(layout: ClusterLayout, libs: Path) -> list[Child]:
    voters = ",".join(f"{node}@{layout.host}:{controller}" for node, _, controller in KAFKA_NODES)
    children = []
    for node, port, controller in KAFKA_NODES:
        data = layout.state_dir / f"kafka-{node}"
        properties = kafka.prepare(
            libs, data, layout.host, port, controller, node_id=node, voters=voters, replication=len(KAFKA_NODES)
        )
        ready = kafka_node_ready(layout.host, port)
        ports = [(port, ""), (controller, "")]
        children.append(
            Child(f"kafka-{node}", kafka.command(libs, properties), ready, ports=ports, ready_timeout_s=120)
        )
    return children


async def provision_kafka(layout: ClusterLayout, settings: Settings) -> None:
    """The events topic, replicated to every node, a majority in sync."""
    await provision.create_events_topic(layout.settings(settings))


def minio_children(layout: ClusterLayout, binary: Path, settings: Settings) -> list[Child]:
    drives = []
    for number, (port, _) in enumerate(MINIO_NODES, 1):
        drive = layout.state_dir / f"minio-{number}"
        drive.mkdir(parents=True, exist_ok=True)
        drives.append(f"http://{layout.host}:{port}{drive}")
    children = []
    for number, (port, console) in enumerate(MINIO_NODES, 1):
        argv = minio.node_command(binary, layout.host, port, console, drives)
        live = http_ok(f"http://{layout.host}:{port}/minio/health/live")
        env = minio.cluster_environment(settings, f"{layout.host}:{port}")
        children.append(Child(f"minio-{number}", argv, live, env=env, ports=[(port, ""), (console, "")]))
    return children


def balancer_child(layout: ClusterLayout) -> Child:
    prefix = layout.state_dir / "internal-lb"
    prefix.mkdir(parents=True, exist_ok=True)
    balancer = nginx.Balancer(
        layout.host,
        TEMPORAL_PORT,
        [temporal_cluster.frontend_port(base) for base in TEMPORAL_NODE_BASES],
        MINIO_PORT,
        [port for port, _ in MINIO_NODES],
        JOB_SERVICE_PORT,
        list(JOB_SERVICE_PORTS),
    )
    argv = nginx.command(prefix, nginx.balancer_config(prefix, balancer))
    # Ready once MinIO, through it, has the quorum to write.
    quorum = http_ok(f"http://{layout.minio_endpoint}/minio/health/cluster")
    ports = [(TEMPORAL_PORT, ""), (MINIO_PORT, ""), (JOB_SERVICE_PORT, "")]
    return Child("internal-lb", argv, quorum, ports=ports)


def client_settings(base: Settings, endpoints: Endpoints) -> Settings:
    """A client's settings for the running cluster: the edge's gRPC address and CA, its HTTP base URL, the
    cluster's keys file, Temporal (the balancer), Kafka and Triton (for tests and the benchmark)."""
    host, port = endpoints.edge_grpc.rsplit(":", 1)
    http_port, grpc_port, metrics_port = TRITON_PORTS
    return (
        ClusterLayout.of(base)
        .settings(base)
        .model_copy(
            update={
                "host": host,
                "grpc_port": int(port),
                "server_ca_file": Path(endpoints.ca_file),
                "public_bridge_url": endpoints.edge_http,
                "api_keys_file": Path(endpoints.api_keys_file),
                "triton_http_port": http_port,
                "triton_grpc_port": grpc_port,
                "triton_metrics_port": metrics_port,
            }
        )
    )


def write_endpoints(layout: ClusterLayout, supervisor: Supervisor, roles: list[str], api_key: str) -> Endpoints:
    edge = layout.edge
    endpoints = Endpoints(
        edge_grpc=edge.grpc,
        edge_http=edge.http,
        ca_file=str(edge.ca_file),
        api_keys_file=str(keys_file(layout.settings(get_settings()))),
        api_key=api_key,
        kafka_bootstrap=layout.kafka_servers,
        temporal_address=layout.temporal_address,
        temporal_nodes=layout.temporal_addresses,
        temporal_namespace=layout.namespace,
        minio_endpoint=layout.minio_endpoint,
        postgres=f"{layout.host}:{POSTGRES_PORT}",
        processes={role: supervisor.pid(role) for role in roles},
    )
    # Whole or not at all: tests and operators read it while a restart rewrites it.
    draft = layout.endpoints_file.with_name(f".{layout.endpoints_file.name}.tmp")
    draft.write_text(endpoints.model_dump_json(indent=2) + "\n")
    draft.replace(layout.endpoints_file)
    return endpoints


def describe(endpoints: Endpoints) -> str:
    width = max(len(role) for role in endpoints.processes)
    lines = [
        "the jobstream cluster is up:",
        f"  edge, gRPC (TLS)    {endpoints.edge_grpc}",
        f"  edge, HTTP + SSE    {endpoints.edge_http}/v1/jobs",
        f"  live page           {endpoints.edge_http}/#key={endpoints.api_key}",
        f"  edge CA             {endpoints.ca_file}",
        f"  API keys file       {endpoints.api_keys_file}   development API key {endpoints.api_key}",
        f"  Temporal            {endpoints.temporal_address} (nodes {', '.join(endpoints.temporal_nodes)}), "
        f"namespace {endpoints.temporal_namespace}",
        f"  Kafka               {endpoints.kafka_bootstrap}",
        f"  MinIO               http://{endpoints.minio_endpoint}",
        f"  PostgreSQL          {endpoints.postgres}",
        "  processes (role, pid):",
        *(f"    {role:<{width}}  {pid}" for role, pid in endpoints.processes.items()),
        "Try:",
        f'  grpcurl -cacert {endpoints.ca_file} -H "authorization: Bearer {endpoints.api_key}" '
        f'-d \'{{"prompt": "It is a truth"}}\' {endpoints.edge_grpc} jobstream.v1.JobService/SubmitJob',
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)
