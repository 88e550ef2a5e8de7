"""Figure 4: fan-out, one SSE bridge process serving 100 and 1,000 concurrent streams.

Each level submits J drill-slow jobs (50 ms/token) and opens S/J SSE connections to each at once, from
one asyncio process with a lean raw-socket client (bench/sse.py). Measured once every connection has
answered 200: token events delivered per second, each token's latency (worker stamp -> client), and
the bridge's CPU (psutil cpu_times over the level) and peak RSS (sampled every 250 ms) by its pid from
STATE_DIR/run/children.pids. Latency counts only tokens stamped after every stream was open, so replay
of what a late joiner missed is not mistaken for delivery lag.

Baselines, from the same run: one stream on one job (the same measurement, no fan-out) for latency and
CPU per event; the rate the workers produced those events at, times the subscribers, for events/s
(delivered / produced = 1 means the bridge kept up); the idle bridge's RSS for memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import psutil

from bench.common import Context, Figure, row, stamp_of, summary
from bench.sse import Received, SseError, read_events

PIPELINE = "drill-slow"


@dataclass(frozen=True)
class Sizes:
    levels: list[tuple[int, int]]  # (streams, jobs)
    tokens: int
    limit_s: float


@dataclass
class Level:
    streams: int
    jobs: int
    opened: int = 0
    failed: int = 0
    open_s: float = 0.0
    delivered_per_s: float = 0.0
    produced_per_s: float = 0.0
    latency_ms: dict[str, float] | None = None
    cpu_percent: float = 0.0
    cpu_ms_per_1k_events: float = 0.0
    rss_mib_before: float = 0.0
    rss_mib_peak: float = 0.0
    events: int = 0


async def _sample_rss(process: psutil.Process, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss / 2**20)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def _level(ctx: Context, streams: int, jobs: int, tokens: int, limit_s: float) -> Level:
    process = psutil.Process(ctx.bridge_pid())
    level = Level(streams, jobs, rss_mib_before=process.memory_info().rss / 2**20)
    peak = [level.rss_mib_before]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(process, peak, stop))
    cpu_before = process.cpu_times()
    started = time.time()
    replies = await asyncio.gather(*(ctx.submit(PIPELINE, tokens) for _ in range(jobs)))
    per_job = [streams // jobs + (1 if i < streams % jobs else 0) for i in range(jobs)]
    opened = [asyncio.Event() for _ in range(streams)]
    urls = [reply.events_url for reply, count in zip(replies, per_job, strict=True) for _ in range(count)]

    async def stream(url: str, event: asyncio.Event) -> list[Received] | Exception:
        try:
            return await read_events(url, timeout_s=limit_s, opened=event)
        except (TimeoutError, OSError, SseError) as exc:
            return exc
        finally:
            event.set()  # a failed stream counts as settled, or the level would wait for it forever

    tasks = [asyncio.create_task(stream(url, event)) for url, event in zip(urls, opened, strict=True)]
    try:
        await asyncio.gather(*(event.wait() for event in opened))
        all_open = time.time()
        results = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        stop.set()
        await sampler
    cpu_after = process.cpu_times()
    ended = time.time()
    level.open_s = all_open - started
    level.failed = sum(isinstance(result, Exception) for result in results)
    level.opened = streams - level.failed
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    level.cpu_percent = 100 * cpu_s / (ended - started)
    latencies: list[float] = []
    stamps: list[float] = []
    received: list[float] = []
    for result in results:
        if isinstance(result, Exception):
            continue
        level.events += len(result)
        for event in result:
            if event.event != "token":
                continue
            stamped = stamp_of(event.json["time"])
            if stamped >= all_open:
                latencies.append((event.received - stamped) * 1000)
                stamps.append(stamped)
                received.append(event.received)
    level.cpu_ms_per_1k_events = 1e6 * cpu_s / level.events if level.events else float("nan")
    level.rss_mib_peak = peak[0]
    level.latency_ms = summary(latencies)
    if len(received) > 1:
        level.delivered_per_s = len(received) / (max(received) - all_open)
        level.produced_per_s = len(stamps) / (max(stamps) - all_open)
    return level


async def run(ctx: Context, sizes: Sizes) -> Figure:
    base = await _level(ctx, 1, 1, sizes.tokens, sizes.limit_s)
    await ctx.drain(30.0)
    levels = []
    for streams, jobs in sizes.levels:
        levels.append(await _level(ctx, streams, jobs, sizes.tokens, sizes.limit_s))
        await ctx.drain(60.0)
    assert base.latency_ms is not None
    rows: list[dict[str, Any]] = []
    one = "1 stream on 1 job"
    for level in levels:
        assert level.latency_ms is not None
        name = f"{level.streams} streams / {level.jobs} jobs"
        rows += [
            row(f"{name}: token events/s delivered", "1/s", level.delivered_per_s, level.produced_per_s, "produced"),
            row(f"{name}: latency p50", "ms", level.latency_ms["p50"], base.latency_ms["p50"], one),
            row(f"{name}: latency p99", "ms", level.latency_ms["p99"], base.latency_ms["p99"], one),
            row(f"{name}: bridge CPU", "% core", level.cpu_percent, base.cpu_percent, one),
            row(f"{name}: bridge CPU per 1k events", "ms", level.cpu_ms_per_1k_events, base.cpu_ms_per_1k_events, one),
            row(f"{name}: bridge RSS peak", "MiB", level.rss_mib_peak, level.rss_mib_before, "bridge before"),
            row(f"{name}: time to open every stream", "s", level.open_s, base.open_s, one),
        ]
        if level.failed:
            rows.append(row(f"{name}: streams that failed or timed out", "", float(level.failed), 0.0, ""))
    return {
        "title": "Fan-out",
        "method": __doc__,
        "rows": rows,
        "measured": {"baseline": base.__dict__, "levels": [level.__dict__ for level in levels]},
        "series": {
            "streams": [level.streams for level in levels],
            "delivered_per_s": [level.delivered_per_s for level in levels],
            "p99_ms": [(level.latency_ms or {}).get("p99") for level in levels],
            "cpu_percent": [level.cpu_percent for level in levels],
            "rss_mib": [level.rss_mib_peak for level in levels],
        },
    }
