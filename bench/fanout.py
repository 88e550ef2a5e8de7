"""Figure 4: fan-out, one SSE bridge process serving 1,000 and 5,000 concurrent streams.

Each level submits J drill-slow jobs (50 ms/token; the 5,000 level drill-trickle, 500 ms/token, since 100
watchers of each of 50 jobs at drill-slow's rate ask more events of one core than it has) and opens S/J SSE
connections to each, from one
asyncio process with a lean raw-socket client (bench/sse.py). The connections open in waves of 500, each
wave waiting until its streams have answered 200 (or failed) before the next starts: thousands of
connects at once would overflow the bridge's listen backlog and measure SYN retries, not the bridge.
Measured once every connection has answered 200: token events delivered per second, each token's
latency (worker stamp -> client), and the bridge's CPU (psutil cpu_times over the level) and peak RSS
(sampled every 250 ms) by its pid from STATE_DIR/run/children.pids. The bridge's CPU per delivered event
is its CPU seconds over the whole level (opening included) / every event its streams delivered (tokens
and the rest). Latency counts only tokens stamped after every stream was open, so replay of what a late
joiner missed is not mistaken for delivery lag; a level's jobs must therefore stream for longer than its
streams take to open (its token count is sized for that). The same CPU is also split at the moment every
stream was open: before it, per stream opened (the openings, with what those streams delivered meanwhile);
after it, per event delivered (the cost per event without the openings). Where a token's delay is made is
read from the bridge's own histograms over the same window (scraped from its metrics port when every stream
was open and at the end): from the token's stamp to the bridge's Kafka tail handing its record over (producer,
broker, fetch), and to the write that sends it; the rest of the latency is the client's.

The load generator runs on other cores than the bridge: for the whole figure the bridge's threads are
pinned to one core and this process's threads to the rest (both restored afterwards), so the client's
own CPU does not show up as bridge latency on the bridge's core. On a 1-core machine nothing is pinned
(the figure's measured data says so). Thousands of sockets need file descriptors: this process's
RLIMIT_NOFILE soft limit is raised to its hard limit for the figure, and a level whose streams exceed
the bridge's (or this process's) open-file limit is skipped with a row that says so.

Baselines, from the same run: one stream on one job (the same measurement, no fan-out) for latency and
CPU per event; the rate the workers produced those events at, times the subscribers, for events/s
(delivered / produced = 1 means the bridge kept up); the idle bridge's RSS for memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import hub_cost
from bench.common import Context, Figure, row
from bench.fanout_level import PIPELINE, Level, LevelSize, measure_level, tail_us_per_record
from bench.fanout_table import level_rows
from bench.open_files import nofile_limit, parse_nofile, raised_nofile, skip_reason
from bench.pinning import pinned, split_cores
from bench.stream_waves import WAVE

# What callers reach through this module: the figure's sizes and run (bench/command.py), the wave size (figure 9),
# and the open-file and pinning decisions the unit tests check, which live in their own modules.
__all__ = [
    "WAVE",
    "LevelSize",
    "Sizes",
    "parse_nofile",
    "pinned",
    "raised_nofile",
    "run",
    "skip_reason",
    "split_cores",
]


@dataclass(frozen=True)
class Sizes:
    levels: list[LevelSize]
    baseline_tokens: int  # the 1-stream level
    limit_s: float  # per stream: opening, the job, and the bridge's backlog


async def run(ctx: Context, sizes: Sizes) -> Figure:
    bridge_pid = ctx.bridge_pid()
    skipped: list[tuple[LevelSize, str]] = []
    levels: list[Level] = []
    with raised_nofile() as own_limit, pinned(bridge_pid) as pinning:
        bridge_limit = nofile_limit(bridge_pid)
        base = await measure_level(ctx, LevelSize(1, 1, sizes.baseline_tokens), sizes.limit_s)
        await ctx.drain(30.0)
        first = sizes.levels[0]
        tail_us = await tail_us_per_record(ctx, first.jobs)
        await ctx.drain(60.0)
        for size in sizes.levels:
            reason = skip_reason(size.streams, own_limit, bridge_limit)
            if reason:
                skipped.append((size, reason))
                continue
            levels.append(await measure_level(ctx, size, sizes.limit_s))
            await ctx.drain(60.0)
    assert base.latency_ms is not None
    send_us = hub_cost.loopback_send_us()
    hub_us = {level.streams: await hub_cost.hub_us_per_event(level.streams // level.jobs) for level in levels}
    rows: list[dict[str, Any]] = []
    for level in levels:
        rows += level_rows(level, base, tail_us, hub_us[level.streams], send_us)
    for size, reason in skipped:
        rows.append(row(f"{size.streams} streams / {size.jobs} jobs: skipped", "", None, None, "", reason))
    measured: dict[str, Any] = {
        "baseline": base.__dict__,
        "levels": [level.__dict__ for level in levels],
        "skipped": [{"streams": size.streams, "jobs": size.jobs, "reason": reason} for size, reason in skipped],
        "tokens_per_job": {str(size.streams): size.tokens for size in sizes.levels} | {"1": sizes.baseline_tokens},
        "pipelines": {str(size.streams): size.pipeline for size in sizes.levels} | {"1": PIPELINE},
        "pinning": pinning,
        "cpu_split": {"tail_us_per_record": tail_us, "hub_us_per_event": hub_us, "send_us_per_write": send_us},
        "open_files": {"load_generator_soft_limit": own_limit, "bridge_soft_limit": bridge_limit},
        "wave": WAVE,
    }
    return {
        "title": "Fan-out",
        "method": __doc__,
        "rows": rows,
        "measured": measured,
        "series": {
            "streams": [level.streams for level in levels],
            "delivered_per_s": [level.delivered_per_s for level in levels],
            "p99_ms": [(level.latency_ms or {}).get("p99") for level in levels],
            "cpu_percent": [level.cpu_percent for level in levels],
            "cpu_us_per_event": [level.cpu_us_per_event for level in levels],
            "rss_mib": [level.rss_mib_peak for level in levels],
        },
    }
