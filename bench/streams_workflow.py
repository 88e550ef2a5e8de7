"""The comparison path for figure 5: tinylm's tokens streamed through Temporal's own Workflow Streams.

A workflow hosts a `WorkflowStream`; one activity calls Triton (same prompt, seed and pace as the
pipeline) and publishes every token to it through `WorkflowStreamClient` (signals), flushing at once
(`force_flush=True`: the latency-optimal setting; tokens that arrive while a signal is in flight ride in
the next batch). Subscribers long-poll with Updates. Both live in Temporal history, which is the point
of the comparison. The benchmark runs the worker in-process on its own task queue.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import tritonclient.grpc.aio as triton
    from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamClient

    from bench.triton_direct import tinylm_stream

TASK_QUEUE = "jobstream-bench-streams"
TOPIC = "tokens"


@dataclass(frozen=True)
class StreamInput:
    prompt: str
    max_tokens: int
    seed: int
    token_delay_ms: int | None = None  # None: the model's default (5 ms), as the `generate` pipeline


@dataclass(frozen=True)
class StreamedToken:
    index: int
    text: str
    time: float  # stamped right after Triton handed the activity the token, as the GPU worker stamps


@workflow.defn(name="BenchWorkflowStreams")
class TokenStreamWorkflow:
    @workflow.init
    def __init__(self, params: StreamInput) -> None:
        self.stream = WorkflowStream()  # must be built in __init__: it registers the signal/update handlers

    @workflow.run
    async def run(self, params: StreamInput) -> int:
        tokens: int = await workflow.execute_activity(
            "bench_stream_tokens",
            params,
            result_type=int,
            start_to_close_timeout=timedelta(minutes=5),
        )
        # Release waiting subscribers; they finish reading through the poll query once the run has closed.
        self.stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return tokens


class StreamActivities:
    def __init__(self, triton_url: str) -> None:
        self.triton_url = triton_url

    @activity.defn(name="bench_stream_tokens")
    async def stream_tokens(self, params: StreamInput) -> int:
        stream = WorkflowStreamClient.from_within_activity()
        topic = stream.topic(TOPIC, type=StreamedToken)
        client = triton.InferenceServerClient(self.triton_url)
        count = 0
        try:
            async with stream:
                tokens = tinylm_stream(client, params.prompt, params.max_tokens, params.token_delay_ms, params.seed)
                async for text in tokens:
                    topic.publish(StreamedToken(count, text, time.time()), force_flush=True)
                    count += 1
                    activity.heartbeat()
                # Let the flusher pick up the last force_flush before __aexit__ cancels it: on Python 3.11
                # asyncio.wait_for can swallow a cancel that lands as its wait completes (fixed in 3.12),
                # and the stream's exit then waits for a flusher that never stops (the quick bench stalled).
                await asyncio.sleep(0.05)
        finally:
            await client.close()
        return count
