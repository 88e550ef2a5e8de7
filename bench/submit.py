"""Figure 1: SubmitJob latency and sustained submits per second at concurrency 1, 16 and 64.

Baseline: the durable write alone, i.e. Temporal `start_workflow` of the same PipelineWorkflow with the
same input, search attributes, memo, task queue and data converter that SubmitJob uses. Those workflows
run exactly like submitted jobs, so both waves leave the same backlog behind them (drained before the next
wave). Ours / baseline is what the front door adds: gRPC, authentication, validation, pipeline
resolution and the SSE stream token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy

from bench.common import PROMPT, SEED, TEMPERATURE, Context, Figure, row, summary
from jobstream.job_state import JobMemo, Status
from jobstream.pipelines import load_pipelines
from jobstream.search_attributes import JOB_PIPELINE, JOB_STATUS, JOB_TENANT
from jobstream.temporal_client import WORKFLOW_QUEUE
from jobstream.workflow_io import WORKFLOW_TYPE, GenerationParams, JobInput
from services.job_service.job_view import new_job_id

PIPELINE = "drill-fast"
MAX_TOKENS = 1  # the jobs run afterwards; keep their cost (and the backlog they leave) small
BASELINE_TENANT = "bench-baseline"


@dataclass(frozen=True)
class Sizes:
    submits: dict[int, int]  # concurrency -> number of submits
    drain_s: float


async def _wave(concurrency: int, count: int, call: Callable[[], Awaitable[Any]]) -> tuple[list[float], float]:
    """`count` calls by `concurrency` workers, each calling again as soon as its last call returned."""
    latencies: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def _start_directly(ctx: Context) -> Callable[[], Awaitable[Any]]:
    stages = load_pipelines().resolve(PIPELINE)
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(JOB_TENANT, BASELINE_TENANT),
            SearchAttributePair(JOB_STATUS, Status.QUEUED.value),
            SearchAttributePair(JOB_PIPELINE, PIPELINE),
        ]
    )

    async def start() -> Any:
        job_id = new_job_id()
        job = JobInput(
            job_id=job_id,
            tenant=BASELINE_TENANT,
            pipeline=PIPELINE,
            stages=stages,
            prompt=PROMPT,
            params=GenerationParams(max_tokens=MAX_TOKENS, temperature=TEMPERATURE, seed=SEED),
        )
        return await ctx.temporal.start_workflow(
            WORKFLOW_TYPE,
            job,
            id=job_id,
            task_queue=WORKFLOW_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes,
            memo=JobMemo(pipeline=PIPELINE, stage_count=len(stages), fingerprint=job_id).changes(),
        )

    return start


async def run(ctx: Context, sizes: Sizes) -> Figure:
    rows: list[dict[str, Any]] = []
    series: dict[str, Any] = {"concurrency": [], "ours_p50": [], "ours_p99": [], "base_p50": [], "base_p99": []}
    series |= {"ours_rate": [], "base_rate": []}
    measured: dict[str, Any] = {}
    direct = _start_directly(ctx)
    baseline_name = "Temporal start_workflow, same workflow"
    for concurrency, count in sorted(sizes.submits.items()):
        base_latency, base_wall = await _wave(concurrency, count, direct)
        # Both waves' jobs run now; each wave starts on an idle pipeline.
        drained = await ctx.drain(sizes.drain_s)
        latency, wall = await _wave(concurrency, count, lambda: ctx.submit(PIPELINE, MAX_TOKENS))
        drained += await ctx.drain(sizes.drain_s)
        ours, base = summary(latency), summary(base_latency)
        rate, base_rate = count / wall, count / base_wall
        measured[str(concurrency)] = {
            "submits": count,
            "latency_ms": ours,
            "baseline_latency_ms": base,
            "submits_per_s": rate,
            "baseline_starts_per_s": base_rate,
            "drain_s": drained,
        }
        rows.append(row(f"SubmitJob latency p50, c={concurrency}", "ms", ours["p50"], base["p50"], baseline_name))
        rows.append(row(f"SubmitJob latency p99, c={concurrency}", "ms", ours["p99"], base["p99"], baseline_name))
        rows.append(row(f"sustained submits, c={concurrency}", "1/s", rate, base_rate, baseline_name))
        series["concurrency"].append(concurrency)
        series["ours_p50"].append(ours["p50"])
        series["ours_p99"].append(ours["p99"])
        series["base_p50"].append(base["p50"])
        series["base_p99"].append(base["p99"])
        series["ours_rate"].append(rate)
        series["base_rate"].append(base_rate)
    return {
        "title": "Submit",
        "method": __doc__,
        "rows": rows,
        "measured": measured,
        "series": series,
    }
