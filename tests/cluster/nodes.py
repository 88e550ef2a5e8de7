"""The cluster's processes for fault injection, found by role in its endpoints file (rewritten by `jobstream up
--cluster` on every restart), never by `ps` patterns."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from devstack.cluster import KAFKA_NODES, ClusterLayout, client_settings, kafka_node_ready
from devstack.cluster_endpoints import Endpoints
from devstack.supervisor import Probe
from jobstream.settings import Settings
from tests.stack.stack_processes import process_alive


@dataclass(frozen=True)
class Cluster:
    layout: ClusterLayout
    client_settings: Settings

    @classmethod
    def of(cls, base: Settings, layout: ClusterLayout) -> Cluster:
        return cls(layout, client_settings(base, Endpoints.read(layout.endpoints_file)))

    def endpoints(self) -> Endpoints:
        return Endpoints.read(self.layout.endpoints_file)

    def pid(self, role: str) -> int:
        return self.endpoints().processes[role]

    def kill(self, role: str, sig: int = signal.SIGKILL) -> int:
        pid = self.pid(role)
        assert process_alive(pid), f"{role} (pid {pid}) is not running"
        os.kill(pid, sig)
        return pid

    async def wait_restarted(self, role: str, old_pid: int, ready: Probe, timeout_s: float = 240.0) -> int:
        """The supervisor's replacement for a killed process: a new pid, alive and passing `ready`."""
        async with asyncio.timeout(timeout_s):
            while True:
                pid = self.pid(role)
                if pid != old_pid and process_alive(pid):
                    try:
                        if await ready(pid):
                            return pid
                    except Exception:
                        pass
                await asyncio.sleep(0.5)

    def kafka_node_ready(self, node: int) -> Probe:
        port = next(port for number, port, _ in KAFKA_NODES if number == node)
        return kafka_node_ready(self.layout.host, port)

    async def partition_leader(self, job_id: str) -> int:
        """The Kafka node that leads the partition of the events topic holding `job_id`'s events."""
        topic = self.client_settings.events_topic
        admin = AIOKafkaAdminClient(bootstrap_servers=self.client_settings.kafka_bootstrap)
        await admin.start()
        try:
            (description,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = sorted(p["partition"] for p in description["partitions"])
        mine = DefaultPartitioner()(job_id.encode(), partitions, partitions)
        return int(next(p["leader"] for p in description["partitions"] if p["partition"] == mine))
