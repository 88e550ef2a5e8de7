"""Figure 5: our Kafka path against Temporal's own streaming (temporalio.contrib.workflow_streams).

The same tinylm tokens (same prompt, seed, 5 ms/token as the `generate` pipeline) go either through our
pipeline (GPU worker -> Kafka -> bridge -> SSE) or through a Workflow Streams workflow (activity ->
signals -> workflow -> update long-polls -> subscriber; bench/streams_workflow.py, its worker run
in-process on its own task queue, subscriber with the library's default 100 ms poll cooldown). For each
token count N: per-token latency (stamp right after Triton -> subscriber), tokens per second at the
subscriber (N / (last token received - first token stamped)) and the workflow's history length. Ours
must stay flat in N: tokens never enter history. Workflow Streams grows with the number of signal
batches and polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, cast

from temporalio.api.enums.v1 import EventType
from temporalio.contrib.workflow_streams import WorkflowStreamClient, WorkflowStreamItem
from temporalio.worker import Worker

from bench.common import PROMPT, SEED, Context, Figure, row, summary
from bench.job_run import run_job
from bench.streams_workflow import TASK_QUEUE, TOPIC, StreamActivities, StreamedToken, StreamInput, TokenStreamWorkflow

PIPELINE = "generate"


@dataclass(frozen=True)
class Sizes:
    token_counts: list[int]
    limit_s: float = 30.0  # a Workflow Streams run that has not delivered every token by then is a stall
    attempts: int = 3


_WORKFLOW_TASK_EVENTS = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    }
)


@dataclass
class PathRun:
    latency_ms: list[float]
    tokens_per_s: float
    history_events: int
    # Events the workflow's own code caused (everything but workflow-task bookkeeping, which timing merges
    # or splits): the part of the history that would grow if tokens entered it.
    workflow_events: int = 0


async def _ours(ctx: Context, tokens: int) -> PathRun:
    job = await run_job(ctx, PIPELINE, tokens)
    stream = job.tokens
    handle = ctx.temporal.get_workflow_handle(job.job_id)
    # The terminal event is published before the workflow closes: its last workflow task (the verdict,
    # the terminal event's marker, the completion) is in the history only once it has.
    await handle.result()
    history = await handle.fetch_history()
    return PathRun(
        latency_ms=[(t.received - t.stamped) * 1000 for t in stream],
        tokens_per_s=len(stream) / (stream[-1].received - stream[0].stamped),
        history_events=len(history.events),
        workflow_events=sum(1 for event in history.events if event.event_type not in _WORKFLOW_TASK_EVENTS),
    )


async def _workflow_streams(ctx: Context, tokens: int) -> PathRun:
    workflow_id = f"bench-streams-{uuid.uuid4().hex}"
    await ctx.temporal.start_workflow(
        TokenStreamWorkflow.run,
        StreamInput(PROMPT, tokens, SEED),
        id=workflow_id,
        task_queue=TASK_QUEUE,
    )
    subscriber = WorkflowStreamClient.create(ctx.temporal, workflow_id)
    received: list[tuple[float, StreamedToken]] = []
    # Stop polling once every token is in: after the last token there is nothing left to wait for.
    items = cast(
        AsyncGenerator[WorkflowStreamItem[StreamedToken], None],
        subscriber.subscribe([TOPIC], result_type=StreamedToken),
    )
    async with contextlib.aclosing(items):
        async for item in items:
            received.append((time.time(), item.data))
            if len(received) == tokens:
                break
    if [token.index for _, token in received] != list(range(tokens)):
        raise RuntimeError(f"workflow streams delivered {[t.index for _, t in received]}")
    handle = ctx.temporal.get_workflow_handle(workflow_id)
    await handle.result()
    history = await handle.fetch_history()
    return PathRun(
        latency_ms=[(at - token.time) * 1000 for at, token in received],
        tokens_per_s=tokens / (received[-1][0] - received[0][1].time),
        history_events=len(history.events),
    )


async def _workflow_streams_retrying(ctx: Context, tokens: int, sizes: Sizes, stalls: list[int]) -> PathRun:
    """Under load a subscription occasionally stops receiving (a poll Update that never returns); such a
    run counts as a stall, is reported, and is run again."""
    for _ in range(sizes.attempts):
        try:
            return await asyncio.wait_for(_workflow_streams(ctx, tokens), sizes.limit_s)
        except TimeoutError:
            stalls.append(tokens)
    raise RuntimeError(f"workflow streams stalled {sizes.attempts} times in a row for N={tokens}")


async def run(ctx: Context, sizes: Sizes) -> Figure:
    activities = StreamActivities(ctx.settings.triton_grpc_url)
    ours: dict[int, PathRun] = {}
    theirs: dict[int, PathRun] = {}
    stalls: list[int] = []
    async with Worker(
        ctx.temporal, task_queue=TASK_QUEUE, workflows=[TokenStreamWorkflow], activities=[activities.stream_tokens]
    ):
        for tokens in sizes.token_counts:
            ours[tokens] = await _ours(ctx, tokens)
            theirs[tokens] = await _workflow_streams_retrying(ctx, tokens, sizes, stalls)
    rows: list[dict[str, Any]] = []
    name = "Temporal workflow_streams"
    all_ours = [ms for run in ours.values() for ms in run.latency_ms]
    all_theirs = [ms for run in theirs.values() for ms in run.latency_ms]
    rows.append(row("per-token latency p50, all N", "ms", summary(all_ours)["p50"], summary(all_theirs)["p50"], name))
    rows.append(row("per-token latency p99, all N", "ms", summary(all_ours)["p99"], summary(all_theirs)["p99"], name))
    for tokens in sizes.token_counts:
        rate, their_rate = ours[tokens].tokens_per_s, theirs[tokens].tokens_per_s
        rows.append(row(f"tokens/s at the client, N={tokens}", "1/s", rate, their_rate, name))
        rows.append(
            row(
                f"history events per job, N={tokens}",
                "events",
                float(ours[tokens].history_events),
                float(theirs[tokens].history_events),
                name,
            )
        )
    if stalls:
        note = f"runs that delivered nothing more for {sizes.limit_s:.0f} s, then ran again"
        rows.append(row("Workflow Streams runs that stalled", "", float(len(stalls)), None, "", note))
    measured: dict[str, Any] = {"workflow_streams_stalls": stalls}
    measured |= {
        str(n): {
            "ours": {
                "latency_ms": summary(ours[n].latency_ms),
                "tokens_per_s": ours[n].tokens_per_s,
                "history_events": ours[n].history_events,
            },
            "workflow_streams": {
                "latency_ms": summary(theirs[n].latency_ms),
                "tokens_per_s": theirs[n].tokens_per_s,
                "history_events": theirs[n].history_events,
            },
        }
        for n in sizes.token_counts
    }
    return {
        "title": "Kafka path vs Temporal workflow_streams",
        "method": __doc__,
        "rows": rows,
        "measured": measured,
        "series": {
            "tokens": list(sizes.token_counts),
            "ours_history": [ours[n].history_events for n in sizes.token_counts],
            "ours_workflow_events": [ours[n].workflow_events for n in sizes.token_counts],
            "theirs_history": [theirs[n].history_events for n in sizes.token_counts],
            "ours_p50_ms": [summary(ours[n].latency_ms)["p50"] for n in sizes.token_counts],
            "theirs_p50_ms": [summary(theirs[n].latency_ms)["p50"] for n in sizes.token_counts],
            "ours_tokens_per_s": [ours[n].tokens_per_s for n in sizes.token_counts],
            "theirs_tokens_per_s": [theirs[n].tokens_per_s for n in sizes.token_counts],
        },
    }
