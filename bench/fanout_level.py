"""Figure 4's measurements on the running bridge: one fan-out level (its streams opened, what they received, the
bridge's CPU, RSS and histograms over it) and the CPU the bridge's Kafka tail spends per record with no stream
open. The figure's method is in bench/fanout.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import psutil

from bench.common import Context, cpu_seconds, stamp_of, summary
from bench.scrape import Scrape, quantile_between, scrape
from bench.stream_waves import StreamResult, opened_in_waves
from jobstream.event_types import EventType

PIPELINE = "drill-slow"
# The bridge's histograms of a token's delay from its stamp: to the Kafka tail handing it over, to the write.
TAIL_DELAY = "jobstream_sse_tail_delay_seconds"
WRITE_DELAY = "jobstream_sse_delivery_lag_seconds"
WRITES = "jobstream_sse_writes_total"
EVENTS = "jobstream_sse_events_delivered_total"
RECORDS_READ = "jobstream_sse_tail_records_read_total"
TAIL_ONLY_S = 4.0  # how long the tail's own CPU is measured, the jobs streaming and no stream open
TAIL_ONLY_TOKENS = 120  # at 50 ms a token, the jobs outlast the measurement


@dataclass(frozen=True)
class LevelSize:
    streams: int
    jobs: int
    tokens: int  # enough that the jobs outlast opening every stream
    # drill-slow (50 ms per token); drill-trickle (500 ms) for a level of many streams at an event rate one core
    # can carry
    pipeline: str = PIPELINE


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
    cpu_us_per_event: float = 0.0
    latency_tokens: int = 0  # tokens stamped after every stream was open (the latency sample)
    rss_mib_before: float = 0.0
    rss_mib_peak: float = 0.0
    events: int = 0
    # Once every stream was open: the bridge's CPU per event delivered after that (the per-event cost without
    # the openings), and where the tokens' delay was by then, from the bridge's own histograms (ms).
    cpu_us_per_event_all_open: float = 0.0
    cpu_ms_per_stream_opened: float = 0.0
    tail_delay_ms: dict[str, float | None] | None = None
    events_per_write: float = 0.0  # once all were open, from the bridge's counters
    write_delay_ms: dict[str, float | None] | None = None


async def _sample_rss(process: psutil.Process, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss / 2**20)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


def _delays(before: Scrape, after: Scrape, histogram: str) -> dict[str, float | None]:
    quantiles = {name: quantile_between(before, after, histogram, q) for name, q in (("p50", 0.5), ("p99", 0.99))}
    return {name: None if value is None else value * 1000 for name, value in quantiles.items()}


@dataclass
class _Tally:
    """What a level's streams received: every event, and of the tokens stamped once every stream was open,
    their latency (stamp -> received), stamps and receive times."""

    events: int = 0
    events_all_open: int = 0
    latencies: list[float] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    received: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, results: list[StreamResult], all_open: float) -> _Tally:
        tally = cls()
        for result in results:
            if isinstance(result, Exception):
                continue
            tally.events += len(result)
            tally.events_all_open += sum(1 for event in result if event.received >= all_open)
            for event in result:
                if event.event != EventType.TOKEN:
                    continue
                stamped = stamp_of(event.json["time"])
                if stamped >= all_open:
                    tally.latencies.append((event.received - stamped) * 1000)
                    tally.stamps.append(stamped)
                    tally.received.append(event.received)
        return tally


@dataclass(frozen=True)
class _Window:
    """The moments a level is measured between: its start, every stream open, its end (wall clock, the bridge's
    CPU seconds, and its metrics at the last two)."""

    started: float
    all_open: float
    ended: float
    cpu_before: float
    cpu_all_open: float
    cpu_s: float  # over the whole level
    at_open: Scrape
    at_end: Scrape


def _fill(level: Level, window: _Window, results: list[StreamResult]) -> None:
    """The level's figures out of what its streams received and what the bridge spent over the window."""
    cpu_s, all_open = window.cpu_s, window.all_open
    level.open_s = all_open - window.started
    level.failed = sum(isinstance(result, Exception) for result in results)
    level.opened = level.streams - level.failed
    level.cpu_percent = 100 * cpu_s / (window.ended - window.started)
    tally = _Tally.of(results, all_open)
    level.events = tally.events
    events_all_open, latencies, stamps, received = tally.events_all_open, tally.latencies, tally.stamps, tally.received
    level.cpu_us_per_event = 1e6 * cpu_s / level.events if level.events else float("nan")
    opening_cpu_s = window.cpu_all_open - window.cpu_before
    level.cpu_us_per_event_all_open = (
        1e6 * (cpu_s - opening_cpu_s) / events_all_open if events_all_open else float("nan")
    )
    level.cpu_ms_per_stream_opened = 1e3 * opening_cpu_s / level.streams
    at_open, at_end = window.at_open, window.at_end
    writes = at_end.value(WRITES) - at_open.value(WRITES)
    level.events_per_write = (at_end.value(EVENTS) - at_open.value(EVENTS)) / writes if writes else float("nan")
    level.tail_delay_ms = _delays(at_open, at_end, TAIL_DELAY)
    level.write_delay_ms = _delays(at_open, at_end, WRITE_DELAY)
    level.latency_tokens = len(latencies)
    level.latency_ms = summary(latencies)
    if len(received) > 1:
        level.delivered_per_s = len(received) / (max(received) - all_open)
        level.produced_per_s = len(stamps) / (max(stamps) - all_open)


async def measure_level(ctx: Context, size: LevelSize, limit_s: float) -> Level:
    """One level: its jobs submitted, size.streams streams opened over them in waves and read to the end."""
    streams, jobs = size.streams, size.jobs
    metrics_url = f"http://{ctx.settings.host}:{ctx.settings.bridge_metrics_port}/metrics"
    process = psutil.Process(ctx.bridge_pid())
    level = Level(streams, jobs, rss_mib_before=process.memory_info().rss / 2**20)
    peak = [level.rss_mib_before]
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(process, peak, stop))
    cpu_before = cpu_seconds(process)
    started = time.time()
    replies = await asyncio.gather(*(ctx.submit(size.pipeline, size.tokens) for _ in range(jobs)))
    per_job = [streams // jobs + (1 if i < streams % jobs else 0) for i in range(jobs)]
    urls = [reply.events_url for reply, count in zip(replies, per_job, strict=True) for _ in range(count)]
    try:
        async with opened_in_waves(urls, limit_s) as tasks:
            all_open = time.time()
            cpu_all_open = cpu_seconds(process)
            at_open = await scrape(metrics_url)
            results = await asyncio.gather(*tasks)
            at_end = await scrape(metrics_url)
    finally:
        stop.set()
        await sampler
    cpu_s = cpu_seconds(process) - cpu_before
    ended = time.time()
    window = _Window(started, all_open, ended, cpu_before, cpu_all_open, cpu_s, at_open, at_end)
    _fill(level, window, results)
    level.rss_mib_peak = peak[0]
    return level


async def tail_us_per_record(ctx: Context, jobs: int) -> float:
    """The bridge's CPU per record its Kafka tail reads, while `jobs` jobs stream and no stream is open (the
    tail fetching, parsing and keeping records; the hub finds no watcher)."""
    metrics_url = f"http://{ctx.settings.host}:{ctx.settings.bridge_metrics_port}/metrics"
    process = psutil.Process(ctx.bridge_pid())
    await asyncio.gather(*(ctx.submit(PIPELINE, TAIL_ONLY_TOKENS) for _ in range(jobs)))
    await asyncio.sleep(1.0)  # the jobs reach their tokens
    before, cpu_before = await scrape(metrics_url), cpu_seconds(process)
    await asyncio.sleep(TAIL_ONLY_S)
    after, cpu_after = await scrape(metrics_url), cpu_seconds(process)
    records = after.value(RECORDS_READ) - before.value(RECORDS_READ)
    return 1e6 * (cpu_after - cpu_before) / records if records else float("nan")
