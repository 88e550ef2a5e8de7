"""Figure 9's own SSE bridge replicas: started beside the stack's bridge (each owning partitions p % R == index),
found healthy, stopped; streams routed to their owner as the cluster's edge routes them; the records each one's
Kafka tail has read."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from bench.scrape import scrape
from devstack.stack import LOCAL_LIMITS
from jobstream.settings import Settings

BRIDGE_PORT = 18180
METRICS_PORT = 19480
READ_METRIC = "jobstream_sse_tail_records_read_total"


@dataclass
class Replica:
    index: int
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    records_read: float = 0.0
    cpu_s: float = 0.0
    delivered: int = 0


@contextlib.contextmanager
def bridges(settings: Settings, count: int, logs: str) -> Iterator[list[Replica]]:
    replicas = []
    try:
        for index in range(count):
            port, metrics_port = BRIDGE_PORT + index, METRICS_PORT + index
            # The local stack's limits (its one development tenant opens every stream), as its own bridge has.
            env = (
                os.environ
                | LOCAL_LIMITS
                | {
                    "JOBSTREAM_STATE_DIR": str(settings.state_dir),
                    "JOBSTREAM_REPLICAS": str(count),
                    "JOBSTREAM_REPLICA_INDEX": str(index),
                    "JOBSTREAM_INSTANCE": f"bench-bridge-{index}",
                    "JOBSTREAM_BRIDGE_PORT": str(port),
                    "JOBSTREAM_BRIDGE_METRICS_PORT": str(metrics_port),
                }
            )
            with open(f"{logs}-{count}-{index}.log", "wb") as log:
                process = subprocess.Popen([sys.executable, "-m", "sse_bridge"], env=env, stdout=log, stderr=log)
            replicas.append(Replica(index, process, port, metrics_port))
        deadline = time.monotonic() + 60
        for replica in replicas:
            while not _healthy(settings, replica):
                if replica.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bench bridge {replica.index} of {count} did not start (see {logs}-*.log)")
                time.sleep(0.2)
        yield replicas
    finally:
        for replica in replicas:
            replica.process.terminate()
        for replica in replicas:
            with contextlib.suppress(subprocess.TimeoutExpired):
                replica.process.wait(15)
            if replica.process.poll() is None:
                replica.process.kill()


def _healthy(settings: Settings, replica: Replica) -> bool:
    try:
        return httpx.get(f"http://{settings.host}:{replica.port}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


async def records_read(settings: Settings, replica: Replica) -> float:
    """The records the replica's Kafka tail has read so far (its metrics port's counter)."""
    metrics = await scrape(f"http://{settings.host}:{replica.metrics_port}/metrics")
    if (READ_METRIC, ()) not in metrics.samples:
        raise RuntimeError(f"no {READ_METRIC} on bench bridge {replica.index}")
    return metrics.value(READ_METRIC)


def routed(events_url: str, replicas: list[Replica]) -> tuple[str, Replica]:
    """The URL sent to the replica that owns its partition, as the edge does."""
    parts = urlsplit(events_url)
    partition = int(parse_qs(parts.query)["partition"][0])
    owner = replicas[partition % len(replicas)]
    host = parts.hostname or "127.0.0.1"
    return urlunsplit(("http", f"{host}:{owner.port}", parts.path, parts.query, "")), owner
