"""Figure 8: what the metrics cost. Two sets of jobstream's processes run beside the stack on its servers,
each in a Temporal namespace of its own (devstack/service_set.py): one as the stack runs them (metrics on),
one with `JOBSTREAM_METRICS=false` (no /metrics, no metric recorded). Rounds alternate between the two, so
that the machine's drift loads both alike; each round measures, on each set:

- SubmitJob latency at concurrency 1 (drill-fast, one token; the jobs drain before the next wave);
- per-token added latency, the GPU worker's stamp -> the token at an SSE client of the set's bridge
  (drill-slow, as figure 3), and the set's GPU worker's CPU per token over those jobs.

Ours is metrics on; the baseline is metrics off, so the ratio is what metrics multiply each figure by.
Traces stay off in both (they are off until configured).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.common import GPU_WORKER, Context, Figure, cpu_seconds, open_context, row, summary
from bench.job_run import run_job
from bench.submit import MAX_TOKENS as SUBMIT_TOKENS
from bench.submit import PIPELINE as SUBMIT_PIPELINE
from devstack.service_set import ServiceSet, service_set

PER_TOKEN_PIPELINE = "drill-slow"
VARIANTS = {"on": ({}, 18_400), "off": ({"JOBSTREAM_METRICS": "false"}, 18_500)}


@dataclass(frozen=True)
class Sizes:
    rounds: int
    submits: int  # per round and variant
    jobs: int  # per-token jobs per round and variant
    tokens: int


@dataclass
class Samples:
    submit_ms: list[float]
    added_ms: list[float]
    worker_cpu_s: float = 0.0
    worker_tokens: int = 0


async def _measure(ctx: Context, services: ServiceSet, sizes: Sizes, samples: Samples) -> None:
    for _ in range(sizes.submits):
        started = time.perf_counter()
        await ctx.submit(SUBMIT_PIPELINE, SUBMIT_TOKENS)
        samples.submit_ms.append((time.perf_counter() - started) * 1000)
    await ctx.drain(60.0)
    worker = psutil.Process(services.pid(GPU_WORKER))
    for _ in range(sizes.jobs):
        before = cpu_seconds(worker)
        job = await run_job(ctx, PER_TOKEN_PIPELINE, sizes.tokens)
        samples.worker_cpu_s += cpu_seconds(worker) - before
        samples.worker_tokens += len(job.tokens)
        samples.added_ms += [(token.received - token.stamped) * 1000 for token in job.tokens]
    await ctx.drain(60.0)


async def run(ctx: Context, sizes: Sizes) -> Figure:
    samples = {name: Samples([], []) for name in VARIANTS}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jobstream-bench-") as scratch:
        async with AsyncExitStack() as stack:
            contexts: dict[str, tuple[Context, ServiceSet]] = {}
            for name, (env, port_base) in VARIANTS.items():
                services = await stack.enter_async_context(
                    service_set(
                        ctx.settings,
                        f"jobstream-bench-metrics-{name}",
                        Path(scratch) / name,
                        port_base,
                        env,
                        models=["tinylm"],
                    )
                )
                set_context = await stack.enter_async_context(open_context(services.settings, ctx.api_key))
                contexts[name] = (set_context, services)
            start_s = time.monotonic() - started
            for set_ctx, _ in contexts.values():
                # Unmeasured: a fresh set's first calls pay for connections and caches the stack has warm.
                await run_job(set_ctx, PER_TOKEN_PIPELINE, 2)
                await set_ctx.submit(SUBMIT_PIPELINE, SUBMIT_TOKENS)
                await set_ctx.drain(60.0)
            for _ in range(sizes.rounds):
                for name, (set_ctx, services) in contexts.items():
                    await _measure(set_ctx, services, sizes, samples[name])
    on, off = samples["on"], samples["off"]
    submit_on, submit_off = summary(on.submit_ms), summary(off.submit_ms)
    added_on, added_off = summary(on.added_ms), summary(off.added_ms)
    cpu_on = 1000 * on.worker_cpu_s / max(1, on.worker_tokens)
    cpu_off = 1000 * off.worker_cpu_s / max(1, off.worker_tokens)
    baseline = "the same processes with metrics off"
    rows = [
        row("SubmitJob p50, c=1, metrics on", "ms", submit_on["p50"], submit_off["p50"], baseline),
        row("added latency per token p50, metrics on", "ms", added_on["p50"], added_off["p50"], baseline),
        row("added latency per token p99, metrics on", "ms", added_on["p99"], added_off["p99"], baseline),
        row("GPU worker CPU per token, metrics on", "ms", cpu_on, cpu_off, baseline),
    ]
    measured: dict[str, Any] = {
        "submit_ms": {"on": submit_on, "off": submit_off},
        "added_ms": {"on": added_on, "off": added_off},
        "gpu_worker_cpu_ms_per_token": {"on": cpu_on, "off": cpu_off},
        "rounds": sizes.rounds,
        "sets_start_s": start_s,
    }
    return {
        "title": "Cost of instrumentation (metrics on vs off)",
        "method": __doc__,
        "rows": rows,
        "measured": measured,
        "series": {name: {"submit_ms": s.submit_ms, "added_ms": s.added_ms} for name, s in samples.items()},
    }
