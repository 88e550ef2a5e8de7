"""Streaming latency, measured on the real stack (prints figures; run with -s to see them).

(a) Per-token added latency: from the GPU worker stamping a token (the event's `time`, taken right after
    Triton handed it the token; the model itself does not stamp tokens) to this SSE client holding it:
    worker -> Kafka -> bridge tail consumer -> SSE -> client. Same machine, same clock.
(b) Time to first token: from calling SubmitJob to the first token at the SSE client.

Only sanity bounds are asserted: the machine is shared and noisy, so speed is reported, not enforced.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import AsyncIterator
from datetime import datetime

import grpc
import pytest

from jobstream.settings import Settings
from jobstream.v1.job_service_pb2_grpc import JobServiceStub
from tests.stack.job_service_client import Stub, submit
from tests.stack.sse_client import read_stream, sse_client
from tests.stack.sse_story import check_story

JOBS = 10
MAX_TOKENS = 40
STAGES = ["preprocess", "generate", "postprocess"]


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        yield JobServiceStub(channel)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ranked = sorted(values)
    rank = max(1, min(len(ranked), math.ceil(p / 100 * len(ranked))))
    return ranked[rank - 1]


@pytest.mark.perf
async def test_per_token_latency_and_time_to_first_token(stub: Stub, api_key: str) -> None:
    per_token_ms: list[float] = []
    first_token_ms: list[float] = []
    async with sse_client() as client:
        for n in range(JOBS):
            submitted = time.time()
            reply = await submit(stub, api_key, f"Measure me, number {n}, as I stream", max_tokens=MAX_TOKENS)
            # The client connects at once, as a browser would after SubmitJob: the job runs meanwhile.
            events = await read_stream(client, reply.events_url)
            story = check_story(reply.job_id, events, STAGES)
            assert story.tokens == MAX_TOKENS
            assert story.text == story.result_text
            tokens = [event for event in events if event.event == "token"]
            first_token_ms.append((tokens[0].received - submitted) * 1000)
            for event in tokens:
                stamped = datetime.fromisoformat(event.json["time"]).timestamp()
                per_token_ms.append((event.received - stamped) * 1000)
    print(
        f"\nper-token added latency (GPU worker stamp -> SSE client), {len(per_token_ms)} tokens of {JOBS} jobs: "
        f"p50={percentile(per_token_ms, 50):.1f} ms p99={percentile(per_token_ms, 99):.1f} ms "
        f"max={max(per_token_ms):.1f} ms mean={statistics.fmean(per_token_ms):.1f} ms"
    )
    print(
        f"time to first token (SubmitJob call -> first token at the SSE client), {JOBS} jobs: "
        f"p50={percentile(first_token_ms, 50):.0f} ms p99={percentile(first_token_ms, 99):.0f} ms "
        f"min={min(first_token_ms):.0f} ms"
    )
    # Sanity only: a token cannot arrive before it was made (1 ms of clock granularity allowed) ...
    assert min(per_token_ms) > -1.0, min(per_token_ms)
    assert min(first_token_ms) > 0
    # ... and a streaming path that takes seconds per token is broken, not slow.
    assert percentile(per_token_ms, 50) < 2000
