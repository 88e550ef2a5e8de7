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

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench import hub_cost
from bench.common import Context, Figure, cpu_seconds, row, stamp_of, summary
from bench.scrape import Scrape, quantile_between, scrape
from bench.sse import Received, SseError, read_events
from jobstream.event_types import EventType

PIPELINE = "drill-slow"
WAVE = 500  # connections opened at once; the next wave waits until these answered
# The bridge's histograms of a token's delay from its stamp: to the Kafka tail handing it over, to the write.
TAIL_DELAY = "jobstream_sse_tail_delay_seconds"
WRITE_DELAY = "jobstream_sse_delivery_lag_seconds"
WRITES = "jobstream_sse_writes_total"
EVENTS = "jobstream_sse_events_delivered_total"
RECORDS_READ = "jobstream_sse_tail_records_read_total"
TAIL_ONLY_S = 4.0  # how long the tail's own CPU is measured, the jobs streaming and no stream open
TAIL_ONLY_TOKENS = 120  # at 50 ms a token, the jobs outlast the measurement
HISTOGRAM_NOTE = "from the bridge's histogram, interpolated in its bucket"
FD_MARGIN = 64  # descriptors either side needs besides the streams (Kafka, Temporal, gRPC, logs)


@dataclass(frozen=True)
class LevelSize:
    streams: int
    jobs: int
    tokens: int  # enough that the jobs outlast opening every stream
    # drill-slow (50 ms per token); drill-trickle (500 ms) for a level of many streams at an event rate one core
    # can carry
    pipeline: str = PIPELINE


@dataclass(frozen=True)
class Sizes:
    levels: list[LevelSize]
    baseline_tokens: int  # the 1-stream level
    limit_s: float  # per stream: opening, the job, and the bridge's backlog


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


def parse_nofile(limits: str) -> float | None:
    """The soft "Max open files" of a /proc/PID/limits text; inf for unlimited, None if absent."""
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            soft = line.removeprefix("Max open files").split()[0]
            return float("inf") if soft == "unlimited" else float(soft)
    return None


def nofile_limit(pid: int) -> float | None:
    """Another process's soft RLIMIT_NOFILE (prlimit through psutil, else /proc/PID/limits); None if
    neither can be read."""
    try:
        soft, _ = psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)
        return float("inf") if soft == resource.RLIM_INFINITY else float(soft)
    except (psutil.Error, OSError):
        pass
    try:
        with open(f"/proc/{pid}/limits") as limits:
            return parse_nofile(limits.read())
    except OSError:
        return None


def skip_reason(streams: int, own_limit: float, bridge_limit: float | None) -> str:
    """Why a level cannot run within these open-file limits ("" if it can): rather than EMFILE chaos."""
    needed = streams + FD_MARGIN
    if bridge_limit is not None and bridge_limit < needed:
        return f"the bridge's open-file limit is {bridge_limit:.0f}, below {needed} ({streams} streams + {FD_MARGIN})"
    if own_limit < needed:
        return f"this process's open-file limit is {own_limit:.0f}, below {needed} ({streams} streams + {FD_MARGIN})"
    return ""


@contextlib.contextmanager
def raised_nofile() -> Iterator[float]:
    """This process's RLIMIT_NOFILE soft limit raised to its hard limit (restored on exit); yields it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = soft
    if hard != soft:
        # Linux refuses RLIM_INFINITY for open files (the ceiling is fs.nr_open): keep the soft limit then.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            raised = hard
    try:
        yield float("inf") if raised == resource.RLIM_INFINITY else float(raised)
    finally:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def split_cores(allowed: Iterable[int]) -> tuple[int, list[int]] | None:
    """(the bridge's core, this process's cores) out of the cores this process may use; None under two."""
    cores = sorted(allowed)
    if len(cores) < 2:
        return None
    return cores[-1], cores[:-1]


def _pin(process: psutil.Process, cores: Iterable[int]) -> None:
    # sched_setaffinity on a pid moves only that thread: every thread is pinned on its own (the bridge's
    # Temporal client and this process's gRPC and Temporal core run threads besides the event loop).
    for thread in process.threads():
        with contextlib.suppress(ProcessLookupError):  # a thread that exited meanwhile
            os.sched_setaffinity(thread.id, set(cores))


@contextlib.contextmanager
def pinned(bridge_pid: int) -> Iterator[dict[str, Any]]:
    """The bridge on one core and this process (the load generator) on the others, both restored on exit.

    Yields what was done, for the figure's measured data.
    """
    allowed = sorted(os.sched_getaffinity(0))
    split = split_cores(allowed)
    if split is None:
        yield {"pinned": False, "cores": allowed, "note": f"{len(allowed)} core: bridge and load generator not pinned"}
        return
    bridge_core, own_cores = split
    bridge, own = psutil.Process(bridge_pid), psutil.Process()
    try:
        bridge_before = bridge.cpu_affinity()
    except psutil.Error as exc:
        yield {"pinned": False, "cores": allowed, "note": f"could not read the bridge's affinity ({exc}): not pinned"}
        return
    info: dict[str, Any] = {"pinned": True, "bridge_core": bridge_core, "load_generator_cores": own_cores}
    try:
        try:
            _pin(bridge, [bridge_core])
            _pin(own, own_cores)
        except (PermissionError, psutil.Error) as exc:
            info = {"pinned": False, "cores": allowed, "note": f"could not pin ({exc}): not pinned"}
        yield info
    finally:
        with contextlib.suppress(PermissionError, psutil.Error):
            _pin(bridge, bridge_before)
        _pin(own, allowed)


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
    def of(cls, results: list[list[Received] | Exception], all_open: float) -> _Tally:
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


async def _level(ctx: Context, size: LevelSize, limit_s: float) -> Level:
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
    opened = [asyncio.Event() for _ in range(streams)]
    urls = [reply.events_url for reply, count in zip(replies, per_job, strict=True) for _ in range(count)]

    async def stream(url: str, event: asyncio.Event) -> list[Received] | Exception:
        try:
            return await read_events(url, timeout_s=limit_s, opened=event)
        except (TimeoutError, OSError, SseError) as exc:
            return exc
        finally:
            event.set()  # a failed stream counts as settled, or the level would wait for it forever

    tasks: list[asyncio.Task[list[Received] | Exception]] = []
    try:
        for first in range(0, streams, WAVE):
            wave = list(zip(urls[first : first + WAVE], opened[first : first + WAVE], strict=True))
            tasks += [asyncio.create_task(stream(url, event)) for url, event in wave]
            await asyncio.gather(*(event.wait() for _, event in wave))
        all_open = time.time()
        cpu_all_open = cpu_seconds(process)
        at_open = await scrape(metrics_url)
        results = await asyncio.gather(*tasks)
        at_end = await scrape(metrics_url)
    finally:
        for task in tasks:
            task.cancel()
        stop.set()
        await sampler
    cpu_s = cpu_seconds(process) - cpu_before
    ended = time.time()
    level.open_s = all_open - started
    level.failed = sum(isinstance(result, Exception) for result in results)
    level.opened = streams - level.failed
    level.cpu_percent = 100 * cpu_s / (ended - started)
    tally = _Tally.of(results, all_open)
    level.events = tally.events
    events_all_open, latencies, stamps, received = tally.events_all_open, tally.latencies, tally.stamps, tally.received
    level.cpu_us_per_event = 1e6 * cpu_s / level.events if level.events else float("nan")
    level.cpu_us_per_event_all_open = (
        1e6 * (cpu_s - (cpu_all_open - cpu_before)) / events_all_open if events_all_open else float("nan")
    )
    level.cpu_ms_per_stream_opened = 1e3 * (cpu_all_open - cpu_before) / streams
    writes = at_end.value(WRITES) - at_open.value(WRITES)
    level.events_per_write = (at_end.value(EVENTS) - at_open.value(EVENTS)) / writes if writes else float("nan")
    level.tail_delay_ms = _delays(at_open, at_end, TAIL_DELAY)
    level.write_delay_ms = _delays(at_open, at_end, WRITE_DELAY)
    level.latency_tokens = len(latencies)
    level.rss_mib_peak = peak[0]
    level.latency_ms = summary(latencies)
    if len(received) > 1:
        level.delivered_per_s = len(received) / (max(received) - all_open)
        level.produced_per_s = len(stamps) / (max(stamps) - all_open)
    return level


async def _tail_us_per_record(ctx: Context, jobs: int) -> float:
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


def _split_rows(name: str, level: Level, tail_us: float, hub_us: float, send_us: float) -> list[dict[str, Any]]:
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


def _delay_rows(name: str, level: Level, base: Level) -> list[dict[str, Any]]:
    """Where the latency p99 is made: by the time the tail hands the record over, by the write, at the client."""
    rows = []
    for part, delays, base_delays in (
        ("at the bridge's Kafka tail", level.tail_delay_ms, base.tail_delay_ms),
        ("at the bridge's write", level.write_delay_ms, base.write_delay_ms),
    ):
        ours, baseline = (delays or {}).get("p99"), (base_delays or {}).get("p99")
        rows.append(row(f"{name}: delay p99 {part}", "ms", ours, baseline, "1 stream on 1 job", HISTOGRAM_NOTE))
    return rows


async def run(ctx: Context, sizes: Sizes) -> Figure:
    bridge_pid = ctx.bridge_pid()
    skipped: list[tuple[LevelSize, str]] = []
    levels: list[Level] = []
    with raised_nofile() as own_limit, pinned(bridge_pid) as pinning:
        bridge_limit = nofile_limit(bridge_pid)
        base = await _level(ctx, LevelSize(1, 1, sizes.baseline_tokens), sizes.limit_s)
        await ctx.drain(30.0)
        first = sizes.levels[0]
        tail_us = await _tail_us_per_record(ctx, first.jobs)
        await ctx.drain(60.0)
        for size in sizes.levels:
            reason = skip_reason(size.streams, own_limit, bridge_limit)
            if reason:
                skipped.append((size, reason))
                continue
            levels.append(await _level(ctx, size, sizes.limit_s))
            await ctx.drain(60.0)
    assert base.latency_ms is not None
    send_us = hub_cost.loopback_send_us()
    hub_us = {level.streams: await hub_cost.hub_us_per_event(level.streams // level.jobs) for level in levels}
    rows: list[dict[str, Any]] = []
    one = "1 stream on 1 job"
    for level in levels:
        assert level.latency_ms is not None
        name = f"{level.streams} streams / {level.jobs} jobs"
        rows += [
            row(f"{name}: token events/s delivered", "1/s", level.delivered_per_s, level.produced_per_s, "produced"),
            row(f"{name}: latency p50", "ms", level.latency_ms["p50"], base.latency_ms["p50"], one),
            row(f"{name}: latency p99", "ms", level.latency_ms["p99"], base.latency_ms["p99"], one),
            *_delay_rows(name, level, base),
            row(f"{name}: bridge CPU", "% core", level.cpu_percent, base.cpu_percent, one),
            row(f"{name}: bridge CPU per delivered event", "µs", level.cpu_us_per_event, base.cpu_us_per_event, one),
            row(
                f"{name}: bridge CPU per event delivered once all were open",
                "µs",
                level.cpu_us_per_event_all_open,
                base.cpu_us_per_event_all_open,
                one,
            ),
            *_split_rows(name, level, tail_us, hub_us[level.streams], send_us),
            row(f"{name}: bridge CPU per stream opened", "ms", level.cpu_ms_per_stream_opened, None, ""),
            row(f"{name}: bridge RSS peak", "MiB", level.rss_mib_peak, level.rss_mib_before, "bridge before"),
            row(f"{name}: time to open every stream", "s", level.open_s, base.open_s, one),
        ]
        if not level.latency_tokens:
            note = "no token was stamped after the last stream opened: the jobs ended first (raise the level's tokens)"
            rows.append(row(f"{name}: tokens in the latency sample", "", None, None, "", note))
        if level.failed:
            rows.append(row(f"{name}: streams that failed or timed out", "", float(level.failed), 0.0, ""))
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
