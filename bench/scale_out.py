"""Figure 9: bridges that scale out. The same load served by R = 1, 2 and 4 SSE bridge replicas, each tailing only
the events partitions it owns (partition p to replica p % R, jobstream/partitioning.py), every stream sent to
its owner as the cluster's edge routes it (by the events URL's `partition`); then a level of 10,000 streams over
two replicas.

Each level starts its own bridge replicas (`python -m sse_bridge` with JOBSTREAM_REPLICAS, REPLICA_INDEX and
ports of their own, beside the stack's bridge, which serves none of these streams), submits J jobs and opens S
streams in waves (as figure 4), and measures over the level, per replica: records its tail read
(`jobstream_sse_tail_records_read` on its metrics port), its CPU (psutil) and the events its streams delivered.
**Baseline:** the records the whole events topic took in meanwhile (its end offsets, before and after): a
replica of R should read 1/R of them, where a bridge that tails every partition reads all of them whatever R.

The 10,000-stream level runs `drill-trickle` jobs (a token every 500 ms) so that the machine's two cores can
carry 10,000 streams at all, long enough to outlast opening them; it reports the open rate, delivered vs
produced events/s and the latency of tokens stamped after the last stream opened (baseline: figure 4's
1-stream level is not rerun here; the ratio is against the produced rate).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.bridge_replicas import Replica, bridges, records_read, routed
from bench.common import Context, Figure, cpu_seconds, row, stamp_of, summary
from bench.open_files import raised_nofile
from bench.stream_waves import StreamResult, opened_in_waves
from jobstream.connections import kafka_options
from jobstream.event_types import EventType
from jobstream.settings import Settings


@dataclass(frozen=True)
class LevelSize:
    replicas: int
    streams: int
    jobs: int
    tokens: int
    pipeline: str = "drill-slow"


@dataclass(frozen=True)
class Sizes:
    levels: list[LevelSize]
    limit_s: float


@dataclass
class Level:
    size: LevelSize
    duration_s: float = 0.0
    open_s: float = 0.0
    topic_records: int = 0
    failed: int = 0
    replicas: list[dict[str, float]] = field(default_factory=list)
    latency_ms: dict[str, float] | None = None
    delivered_per_s: float = 0.0
    # Every replica's CPU over every event delivered: a replica that owns none of a few jobs delivers nothing.
    cpu_us_per_event: float = float("nan")
    produced_per_s: float = 0.0


async def _topic_end(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(settings.events_topic) or set()
        ends = await consumer.end_offsets([TopicPartition(settings.events_topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


def _tally(
    level: Level, targets: list[tuple[str, Replica]], results: list[StreamResult], all_open: float
) -> tuple[list[float], list[float], list[float], set[tuple[str, str]]]:
    """Failed streams and each replica's deliveries into `level`; of the tokens stamped once every stream was
    open: latencies (ms), stamps, receive times, and each (job, token id) once however many watch it."""
    latencies: list[float] = []
    stamps: list[float] = []
    received: list[float] = []
    produced: set[tuple[str, str]] = set()
    for (_, owner), result in zip(targets, results, strict=True):
        if isinstance(result, Exception):
            level.failed += 1
            continue
        owner.delivered += len(result)
        for event in result:
            if event.event == EventType.TOKEN and (stamped := stamp_of(event.json["time"])) >= all_open:
                latencies.append((event.received - stamped) * 1000)
                stamps.append(stamped)
                produced.add((event.json["job_id"], event.id))
                received.append(event.received)
    return latencies, stamps, received, produced


async def _level(ctx: Context, size: LevelSize, limit_s: float, logs: str) -> Level:
    level = Level(size)
    with bridges(ctx.settings, size.replicas, logs) as replicas:
        processes = [psutil.Process(replica.process.pid) for replica in replicas]
        read_before = [await records_read(ctx.settings, replica) for replica in replicas]
        cpu_before = [cpu_seconds(process) for process in processes]
        end_before = await _topic_end(ctx.settings)
        started = time.time()
        replies = await asyncio.gather(*(ctx.submit(size.pipeline, size.tokens) for _ in range(size.jobs)))
        per_job = [size.streams // size.jobs + (1 if i < size.streams % size.jobs else 0) for i in range(size.jobs)]
        targets = [
            routed(reply.events_url, replicas) for reply, n in zip(replies, per_job, strict=True) for _ in range(n)
        ]
        async with opened_in_waves([url for url, _ in targets], limit_s) as tasks:
            all_open = time.time()
            results = await asyncio.gather(*tasks)
        level.duration_s = time.time() - started
        level.open_s = all_open - started
        level.topic_records = await _topic_end(ctx.settings) - end_before
        for replica, process, before, cpu in zip(replicas, processes, read_before, cpu_before, strict=True):
            replica.records_read = await records_read(ctx.settings, replica) - before
            replica.cpu_s = cpu_seconds(process) - cpu
    latencies, stamps, received, produced = _tally(level, targets, results, all_open)
    level.latency_ms = summary(latencies) if latencies else None
    if len(received) > 1:
        level.delivered_per_s = len(received) / (max(received) - all_open)
        # What the workers produced, times the watchers of each job: what the bridges should deliver.
        level.produced_per_s = len(produced) / (max(stamps) - all_open) * (size.streams / size.jobs)
    delivered = sum(replica.delivered for replica in replicas)
    if delivered:
        level.cpu_us_per_event = 1e6 * sum(replica.cpu_s for replica in replicas) / delivered
    level.replicas = [
        {
            "records_read_per_s": replica.records_read / level.duration_s,
            "cpu_percent": 100 * replica.cpu_s / level.duration_s,
            "delivered_per_s": replica.delivered / level.duration_s,
            "cpu_us_per_event": 1e6 * replica.cpu_s / replica.delivered if replica.delivered else float("nan"),
        }
        for replica in replicas
    ]
    return level


def _mean(level: Level, key: str) -> float:
    return sum(replica[key] for replica in level.replicas) / len(level.replicas)


async def run(ctx: Context, sizes: Sizes, logs: str = "/tmp/jobstream-bench-bridge") -> Figure:
    levels: list[Level] = []
    with raised_nofile():
        for size in sizes.levels:
            levels.append(await _level(ctx, size, sizes.limit_s, logs))
            await ctx.drain(120.0)
    rows: list[dict[str, Any]] = []
    alone = next((level for level in levels if level.size.replicas == 1), None)
    for level in levels:
        name = f"{level.size.streams} streams / {level.size.jobs} jobs on {level.size.replicas}"
        per_event = row(f"{name}: bridge CPU per delivered event", "µs", level.cpu_us_per_event, None, "")
        if level.size.pipeline == "drill-slow":  # the scale law: the same load on R replicas
            topic_per_s = level.topic_records / level.duration_s
            one = alone is not None and alone is not level
            rows += [
                row(
                    f"{name}: records read per replica", "1/s", _mean(level, "records_read_per_s"), topic_per_s, "topic"
                ),
                row(
                    f"{name}: CPU per replica",
                    "% core",
                    _mean(level, "cpu_percent"),
                    _mean(alone, "cpu_percent") if one and alone is not None else None,
                    "1 replica" if one else "",
                ),
                per_event,
            ]
        else:
            rows += [
                row(f"{name}: streams opened per second", "1/s", level.size.streams / level.open_s, None, ""),
                row(
                    f"{name}: token events/s delivered", "1/s", level.delivered_per_s, level.produced_per_s, "produced"
                ),
                row(f"{name}: latency p50", "ms", (level.latency_ms or {}).get("p50"), None, ""),
                row(f"{name}: latency p99", "ms", (level.latency_ms or {}).get("p99"), None, ""),
                per_event,
            ]
        if level.failed:
            rows.append(row(f"{name}: streams that failed or timed out", "", float(level.failed), 0.0, ""))
    return {
        "title": "Bridges that scale out",
        "method": __doc__,
        "rows": rows,
        "measured": {"levels": [level.__dict__ | {"size": level.size.__dict__} for level in levels]},
        "series": {
            "replicas": [level.size.replicas for level in levels if level.size.pipeline == "drill-slow"],
            "records_read_per_replica": [
                _mean(level, "records_read_per_s") for level in levels if level.size.pipeline == "drill-slow"
            ],
            "cpu_percent_per_replica": [
                _mean(level, "cpu_percent") for level in levels if level.size.pipeline == "drill-slow"
            ],
        },
    }
