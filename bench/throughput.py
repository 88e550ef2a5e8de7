"""Figure 6: end-to-end throughput, the orchestration ceiling on this machine.

The whole pipeline with the model's per-token delay at zero (drill-fast): C client loops, each submitting
a job, reading its SSE stream to the terminal event, then submitting the next, until J jobs are done.
Jobs per minute = J / wall time; tokens per second = J x N / wall time; plus each job's submit -> last
event latency. Baseline: the same C loops calling Triton's stream_infer directly (same N tokens, 0 ms per
token) - what the model alone can serve on this machine in the same run.

GPU worker CPU per token: psutil cpu_times of the gpu-worker-tinylm process (pid from
STATE_DIR/run/children.pids) over the jobs phase only / the tokens those jobs generated. Baseline: this
process's own CPU (time.process_time) over the direct loops / the same number of tokens, i.e. what a
direct Triton client spends receiving them; the rest of the worker's CPU is heartbeats, Kafka publishes
and the Temporal activity around the model call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psutil
import tritonclient.grpc.aio as triton

from bench.common import DIRECT_CLIENT, GPU_WORKER, PROMPT, Context, Figure, cpu_seconds, row, summary
from bench.job_run import run_job
from bench.triton_direct import direct_stream

PIPELINE = "drill-fast"


@dataclass(frozen=True)
class Sizes:
    jobs: int
    concurrency: int
    tokens: int


async def _loops(concurrency: int, jobs: int, one: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    remaining = jobs
    latencies: list[float] = []

    async def loop() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def run(ctx: Context, sizes: Sizes) -> Figure:
    client = triton.InferenceServerClient(ctx.settings.triton_grpc_url)
    try:

        async def direct() -> None:
            await direct_stream(client, PROMPT, sizes.tokens, 0)

        async def job() -> None:
            await run_job(ctx, PIPELINE, sizes.tokens)

        # The GPU workers of the model (the cluster runs two replicas): their CPU together.
        workers = [psutil.Process(pid) for pid in ctx.replica_pids(GPU_WORKER)]
        await direct()  # warm the channel
        own_before = time.process_time()
        base_wall, base_latency = await _loops(sizes.concurrency, sizes.jobs, direct)
        direct_cpu_s = time.process_time() - own_before
        worker_before = sum(cpu_seconds(worker) for worker in workers)
        wall, latency = await _loops(sizes.concurrency, sizes.jobs, job)
        worker_cpu_s = sum(cpu_seconds(worker) for worker in workers) - worker_before
    finally:
        await client.close()
    jobs_per_min, base_per_min = 60 * sizes.jobs / wall, 60 * sizes.jobs / base_wall
    tokens_per_s, base_tokens_per_s = sizes.jobs * sizes.tokens / wall, sizes.jobs * sizes.tokens / base_wall
    tokens = sizes.jobs * sizes.tokens  # both phases streamed exactly these (run_job and direct_stream check)
    worker_ms, direct_ms = 1000 * worker_cpu_s / tokens, 1000 * direct_cpu_s / tokens
    ours = summary([s * 1000 for s in latency])
    base = summary([s * 1000 for s in base_latency])
    name = "Triton stream_infer direct"
    label = f"c={sizes.concurrency}, {sizes.tokens} tokens/job"
    rows = [
        row(f"jobs per minute ({label})", "1/min", jobs_per_min, base_per_min, name),
        row(f"tokens per second ({label})", "1/s", tokens_per_s, base_tokens_per_s, name),
        row("job latency p50 (submit -> terminal event)", "ms", ours["p50"], base["p50"], name),
        row("job latency p99 (submit -> terminal event)", "ms", ours["p99"], base["p99"], name),
        row("GPU worker CPU per token", "ms", worker_ms, direct_ms, DIRECT_CLIENT),
    ]
    return {
        "title": "End-to-end throughput",
        "method": __doc__,
        "rows": rows,
        "measured": {
            "jobs": sizes.jobs,
            "concurrency": sizes.concurrency,
            "tokens_per_job": sizes.tokens,
            "wall_s": wall,
            "baseline_wall_s": base_wall,
            "job_latency_ms": ours,
            "baseline_latency_ms": base,
            "gpu_worker_cpu_s": worker_cpu_s,
            "direct_client_cpu_s": direct_cpu_s,
            "tokens": tokens,
        },
        "series": {"ours_latency_ms": [s * 1000 for s in latency], "base_latency_ms": [s * 1000 for s in base_latency]},
    }
