"""Figure 4's table: the rows of one measured fan-out level against the 1-stream baseline, with what its CPU per
event is made of and where its latency is made."""

from __future__ import annotations

from typing import Any

from bench.common import row
from bench.fanout_level import Level

HISTOGRAM_NOTE = "from the bridge's histogram, interpolated in its bucket"
ONE_STREAM = "1 stream on 1 job"  # the baseline level's name in the baseline column


def split_rows(name: str, level: Level, tail_us: float, hub_us: float, send_us: float) -> list[dict[str, Any]]:
    """What the CPU per event once all were open is made of: the tail's share (its cost per record over the
    watchers of each record), the hub and encoding, the send per write; the rest is asyncio and the ASGI server."""
    watchers = level.streams / level.jobs
    tail_share = tail_us / watchers
    send_share = send_us / level.events_per_write
    rest = level.cpu_us_per_event_all_open - tail_share - hub_us - send_share
    part = f"{name}: of the CPU per event once open,"
    return [
        row(f"{part} the Kafka tail's share", "µs", tail_share, tail_us, "per record", f"{watchers:.0f} watch each"),
        row(f"{part} the hub and SSE encoding", "µs", hub_us, None, "", "in process, over a log in memory"),
        row(f"{part} the send system call", "µs", send_share, send_us, "a write", f"{level.events_per_write:.2f}/wr."),
        row(f"{part} asyncio and the ASGI server (the rest)", "µs", rest, None, ""),
    ]


def delay_rows(name: str, level: Level, base: Level) -> list[dict[str, Any]]:
    """Where the latency p99 is made: by the time the tail hands the record over, by the write, at the client."""
    rows = []
    for part, delays, base_delays in (
        ("at the bridge's Kafka tail", level.tail_delay_ms, base.tail_delay_ms),
        ("at the bridge's write", level.write_delay_ms, base.write_delay_ms),
    ):
        ours, baseline = (delays or {}).get("p99"), (base_delays or {}).get("p99")
        rows.append(row(f"{name}: delay p99 {part}", "ms", ours, baseline, ONE_STREAM, HISTOGRAM_NOTE))
    return rows


def level_rows(level: Level, base: Level, tail_us: float, hub_us: float, send_us: float) -> list[dict[str, Any]]:
    """Every row of one level: delivery, latency and where it is made, the bridge's CPU and its parts, memory."""
    assert level.latency_ms is not None
    assert base.latency_ms is not None
    name = f"{level.streams} streams / {level.jobs} jobs"
    rows = [
        row(f"{name}: token events/s delivered", "1/s", level.delivered_per_s, level.produced_per_s, "produced"),
        row(f"{name}: latency p50", "ms", level.latency_ms["p50"], base.latency_ms["p50"], ONE_STREAM),
        row(f"{name}: latency p99", "ms", level.latency_ms["p99"], base.latency_ms["p99"], ONE_STREAM),
        *delay_rows(name, level, base),
        row(f"{name}: bridge CPU", "% core", level.cpu_percent, base.cpu_percent, ONE_STREAM),
        row(f"{name}: bridge CPU per delivered event", "µs", level.cpu_us_per_event, base.cpu_us_per_event, ONE_STREAM),
        row(
            f"{name}: bridge CPU per event delivered once all were open",
            "µs",
            level.cpu_us_per_event_all_open,
            base.cpu_us_per_event_all_open,
            ONE_STREAM,
        ),
        *split_rows(name, level, tail_us, hub_us, send_us),
        row(f"{name}: bridge CPU per stream opened", "ms", level.cpu_ms_per_stream_opened, None, ""),
        row(f"{name}: bridge RSS peak", "MiB", level.rss_mib_peak, level.rss_mib_before, "bridge before"),
        row(f"{name}: time to open every stream", "s", level.open_s, base.open_s, ONE_STREAM),
    ]
    if not level.latency_tokens:
        note = "no token was stamped after the last stream opened: the jobs ended first (raise the level's tokens)"
        rows.append(row(f"{name}: tokens in the latency sample", "", None, None, "", note))
    if level.failed:
        rows.append(row(f"{name}: streams that failed or timed out", "", float(level.failed), 0.0, ""))
    return rows
