"""`jobstream bench [--quick] [--out DIR] [--update-readme] [--before RESULTS.json]`: every figure, against the
local stack."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import (
    fanout,
    instrumentation,
    per_token,
    report,
    scale_out,
    stack_info,
    streams,
    submit,
    throughput,
    ttft,
    writes,
)
from bench.common import Context, open_context
from devstack import cluster
from devstack.cluster_endpoints import Endpoints
from jobstream.connections import job_service_channel
from jobstream.settings import PROJECT_ROOT, Settings, get_settings

RESULTS = PROJECT_ROOT / "bench" / "results"


@dataclass(frozen=True)
class Plan:
    submit: submit.Sizes
    ttft: ttft.Sizes
    per_token: per_token.Sizes
    fanout: fanout.Sizes
    streams: streams.Sizes
    throughput: throughput.Sizes
    writes: writes.Sizes
    instrumentation: instrumentation.Sizes
    scale_out: scale_out.Sizes
    drain_s: float


# Quick proves every figure still works (CI runs it); its numbers are indicative only.
QUICK = Plan(
    submit=submit.Sizes(submits={1: 2, 16: 16}, drain_s=10.0),
    ttft=ttft.Sizes(jobs=2),
    per_token=per_token.Sizes(jobs=1, tokens=12),
    fanout=fanout.Sizes(levels=[fanout.LevelSize(20, 2, tokens=12)], baseline_tokens=12, limit_s=30.0),
    streams=streams.Sizes(token_counts=[16, 32], limit_s=10.0),
    throughput=throughput.Sizes(jobs=6, concurrency=3, tokens=16),
    writes=writes.Sizes(jobs=2, idle_s=2.0, settle_s=0.5),
    instrumentation=instrumentation.Sizes(rounds=1, submits=4, jobs=1, tokens=12),
    scale_out=scale_out.Sizes(
        levels=[scale_out.LevelSize(1, 8, 4, tokens=12), scale_out.LevelSize(2, 8, 4, tokens=12)], limit_s=30.0
    ),
    drain_s=10.0,
)
FULL = Plan(
    submit=submit.Sizes(submits={1: 20, 16: 64, 64: 128}, drain_s=300.0),
    ttft=ttft.Sizes(jobs=20),
    per_token=per_token.Sizes(jobs=6, tokens=40),
    # 64 tokens stream for ~3.2 s; 5,000 streams take longer to open than that, so that level's jobs
    # stream 10 s (its latency counts only tokens stamped after the last stream opened).
    fanout=fanout.Sizes(
        # 5,000 streams at drill-slow's rate would ask one core for ~55,000 events/s (past any Python bridge):
        # that level trickles, so it measures what 5,000 connections cost rather than a saturated core.
        levels=[
            fanout.LevelSize(1000, 50, tokens=64),
            fanout.LevelSize(5000, 50, tokens=60, pipeline="drill-trickle"),
        ],
        baseline_tokens=64,
        limit_s=300.0,
    ),
    streams=streams.Sizes(token_counts=[16, 64, 256], limit_s=30.0),
    throughput=throughput.Sizes(jobs=80, concurrency=16, tokens=64),
    writes=writes.Sizes(jobs=5, idle_s=3.0, settle_s=1.0),
    instrumentation=instrumentation.Sizes(rounds=3, submits=20, jobs=2, tokens=40),
    # The same load on 1, 2 and 4 replicas (jobs that outlast opening their streams: 200 tokens, 10 s), then
    # 10,000 streams over two, at a token every 500 ms for 75 s.
    scale_out=scale_out.Sizes(
        levels=[
            scale_out.LevelSize(1, 500, 25, tokens=200),
            scale_out.LevelSize(2, 500, 25, tokens=200),
            scale_out.LevelSize(4, 500, 25, tokens=200),
            scale_out.LevelSize(2, 10_000, 50, tokens=150, pipeline="drill-trickle"),
        ],
        limit_s=300.0,
    ),
    drain_s=120.0,
)


# What the cluster profile is measured on: the figures that need no single-node internals (the dev server's
# process, one bridge to pin, a second service set).
CLUSTER_FIGURES = ["1", "2", "6"]


def cluster_settings() -> Settings:
    base = get_settings()
    endpoints_file = cluster.ClusterLayout.of(base).endpoints_file
    try:
        endpoints = Endpoints.read(endpoints_file)
    except OSError:
        raise SystemExit(f"jobstream bench --cluster: no {endpoints_file}; start `jobstream up --cluster`") from None
    return cluster.client_settings(base, endpoints)


async def _check_stack(settings: Settings) -> None:
    try:
        async with job_service_channel(settings) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3.0)
    except grpc.aio.AioRpcError as exc:
        raise SystemExit(
            f"jobstream bench: no JobService at {settings.grpc_target} ({exc.code().name}); start `jobstream up` first"
        ) from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(f"jobstream bench: the JobService at {settings.grpc_target} is not serving yet")


async def _figures(ctx: Context, plan: Plan, say: Any, only: list[str] | None) -> dict[str, Any]:
    steps: list[tuple[str, str, Any]] = [
        ("1", "submit", lambda: submit.run(ctx, plan.submit)),
        ("2", "time to first token", lambda: ttft.run(ctx, plan.ttft)),
        ("3", "per-token latency", lambda: per_token.run(ctx, plan.per_token)),
        ("4", "fan-out", lambda: fanout.run(ctx, plan.fanout)),
        ("5", "vs workflow_streams", lambda: streams.run(ctx, plan.streams)),
        ("6", "throughput", lambda: throughput.run(ctx, plan.throughput)),
        ("7", "durable writes", lambda: writes.run(ctx, plan.writes)),
        ("8", "cost of instrumentation", lambda: instrumentation.run(ctx, plan.instrumentation)),
        ("9", "bridges that scale out", lambda: scale_out.run(ctx, plan.scale_out)),
    ]
    figures: dict[str, Any] = {}
    for key, name, step in steps:
        if only is not None and key not in only:
            continue
        started = time.monotonic()
        say(f"figure {key}: {name} ...")
        figure = await step()
        figure["duration_s"] = time.monotonic() - started
        figures[key] = figure
        # Each figure starts from an idle pipeline: what one left running must not load the next.
        drained = await ctx.drain(plan.drain_s)
        say(f"figure {key}: {name} done in {figure['duration_s']:.1f}s (+{drained:.1f}s draining)")
    return figures


async def run(
    quick: bool, out: Path, say: Any = print, on_cluster: bool = False, only: list[str] | None = None
) -> dict[str, Any]:
    settings = cluster_settings() if on_cluster else get_settings()
    await _check_stack(settings)
    if on_cluster:
        only = [key for key in (only or CLUSTER_FIGURES) if key in CLUSTER_FIGURES]
    plan = QUICK if quick else FULL
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # Read before the figures: the dev server's flags and journal mode that every Temporal-bound row ran under.
        "stack": stack_info.describe_cluster(settings) if on_cluster else stack_info.describe(settings),
    }
    async with open_context(settings) as ctx:
        await ctx.drain(plan.drain_s)
        results["figures"] = await _figures(ctx, plan, say, only)
    results["duration_s"] = time.monotonic() - started
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    return results


def load_before(path: str) -> dict[str, Any]:
    """An older results.json, for the table's "before" column."""
    try:
        before = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"jobstream bench: --before {path}: {exc}") from None
    if not isinstance(before, dict) or not isinstance(before.get("figures"), dict):
        raise SystemExit(f"jobstream bench: --before {path} is not a bench results.json")
    return before


def main(
    quick: bool,
    out: str | None,
    update_readme: bool,
    before_path: str | None = None,
    on_cluster: bool = False,
    only: list[str] | None = None,
) -> int:
    # Read first: a bad path should fail now, not after a run of several minutes.
    before = load_before(before_path) if before_path else None
    folder = Path(out) if out else RESULTS / datetime.now().strftime("%Y%m%d-%H%M%S")
    results = asyncio.run(run(quick, folder, on_cluster=on_cluster, only=only))
    table = report.write(results, folder, before)
    print(table)
    print(f"\nresults: {folder}/results.json, results.md and *.png")
    if update_readme:
        if quick:
            print("README.md not updated: it shows the full run (drop --quick)")
            return 1
        changed = report.update_readme(table, cluster=on_cluster)
        print("README.md updated" if changed else "README.md already current")
    return 0
