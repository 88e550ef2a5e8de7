"""`jobstream up --cluster` (issue 19): jobstream on the real distributed engines, beside the single-node stack
(own state under STATE_DIR/cluster/, own ports). Built so far: the Temporal tier, Temporal's own server as
two nodes on PostgreSQL 15, with jobstream's namespace and search attributes provisioned. Still to come:
three Kafka nodes, four MinIO nodes, the nginx edge and replicas of jobstream's own processes.

Its processes are found through STATE_DIR/cluster/endpoints.json, by role name, never by `ps` patterns."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client

from devstack import kafka, postgres, provision, temporal_cluster
from devstack.service_set import register_namespace
from devstack.supervisor import Child, Probe, Supervisor
from devstack.temporal_server import DEV_SERVER_CONFIG
from jobstream.settings import Settings

# Well away from the single-node stack's ports (7233, 9092, 9000, 8000-8002, 8080, 50051, 946x).
POSTGRES_PORT = 15432
TEMPORAL_NODE_BASES = (17300, 17310)
# Three KRaft nodes, each broker and controller: (node id, client port, controller port).
KAFKA_NODES = ((1, 19092, 19192), (2, 19093, 19193), (3, 19094, 19194))


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
    update = {"kafka_servers": layout.kafka_servers, "events_replication": len(KAFKA_NODES)}
    await provision.create_events_topic(settings.model_copy(update=update))


def write_endpoints(layout: ClusterLayout, supervisor: Supervisor, roles: list[str]) -> dict[str, object]:
    endpoints: dict[str, object] = {
        "temporal": {"addresses": layout.temporal_addresses, "namespace": layout.namespace},
        "postgres": f"{layout.host}:{POSTGRES_PORT}",
        "kafka_bootstrap": layout.kafka_servers,
        "processes": {role: supervisor.pid(role) for role in roles},
    }
    layout.endpoints_file.write_text(json.dumps(endpoints, indent=2) + "\n")
    return endpoints
