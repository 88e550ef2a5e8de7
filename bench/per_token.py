"""Figure 3: per-token added latency, the model emitting a token -> the token at an SSE client.

"Emitted" is the GPU worker's stamp on the token event, taken right after Triton's stream_infer handed
the worker the token: the worker *is* a direct Triton client, so that stamp is the moment a direct
client would hold the token, and SSE receive - stamp is exactly what our path adds per token (Kafka,
the bridge, SSE). The direct path's own added latency is zero by that definition, so the comparable
baseline is the shape of the stream a client sees: the gaps between consecutive tokens at a direct
Triton client versus at our SSE client, with the model pacing tokens at 50 ms (drill-slow). If our path
only delays tokens by a constant, the gaps are equal (ratio 1); jitter and batching widen the tail.
A second Kafka consumer configured like the bridge's splits the added latency into Kafka and bridge.

GPU worker CPU per token: psutil cpu_times of the gpu-worker-tinylm process over each job's run only
(submit -> terminal event) / the tokens those jobs generated. Baseline: this process's own CPU
(time.process_time) over direct Triton streams of the same tokens and pace / their tokens. Those direct
streams run after the Kafka tap has stopped (the tap's polling would be counted as the client's).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import psutil
import tritonclient.grpc.aio as triton

from bench.common import DIRECT_CLIENT, GPU_WORKER, PROMPT, Context, Figure, cpu_seconds, row, summary
from bench.job_run import run_job
from bench.kafka_tap import kafka_tap
from bench.triton_direct import direct_stream

PIPELINE = "drill-slow"
TOKEN_DELAY_MS = 50  # drill-slow's per-token delay
CPU_BASELINE_STREAMS = 2  # direct streams for the client-CPU baseline (CPU time needs few tokens)


@dataclass(frozen=True)
class Sizes:
    jobs: int
    tokens: int


async def run(ctx: Context, sizes: Sizes) -> Figure:
    added_ms: list[float] = []
    kafka_ms: list[float] = []
    bridge_ms: list[float] = []
    gaps_ms: list[float] = []
    direct_gaps_ms: list[float] = []
    rates: list[float] = []
    direct_rates: list[float] = []
    worker = psutil.Process(ctx.child_pid(GPU_WORKER))
    worker_cpu_s = 0.0
    worker_tokens = 0
    client = triton.InferenceServerClient(ctx.settings.triton_grpc_url)
    try:
        async with kafka_tap(ctx.settings) as tap:
            for _ in range(sizes.jobs):
                direct = await direct_stream(client, PROMPT, sizes.tokens, TOKEN_DELAY_MS)
                direct_gaps_ms += [(b - a) * 1000 for a, b in itertools.pairwise(direct.received)]
                direct_rates.append((len(direct.received) - 1) / (direct.received[-1] - direct.received[0]))
                worker_before = cpu_seconds(worker)
                job = await run_job(ctx, PIPELINE, sizes.tokens, on_reply=tap.watch)
                worker_cpu_s += cpu_seconds(worker) - worker_before
                tokens = job.tokens
                worker_tokens += len(tokens)
                for token in tokens:
                    added_ms.append((token.received - token.stamped) * 1000)
                    tapped = tap.at(job.job_id, token.event_id)
                    if tapped is not None:
                        kafka_ms.append((tapped - token.stamped) * 1000)
                        bridge_ms.append((token.received - tapped) * 1000)
                received = [token.received for token in tokens]
                gaps_ms += [(b - a) * 1000 for a, b in itertools.pairwise(received)]
                rates.append((len(received) - 1) / (received[-1] - received[0]))
        own_before, direct_tokens = time.process_time(), 0
        for _ in range(min(CPU_BASELINE_STREAMS, sizes.jobs)):
            direct_tokens += len((await direct_stream(client, PROMPT, sizes.tokens, TOKEN_DELAY_MS)).received)
        direct_cpu_s = time.process_time() - own_before
    finally:
        await client.close()
    added, kafka, bridge = summary(added_ms), summary(kafka_ms), summary(bridge_ms)
    gaps, direct_gaps = summary(gaps_ms), summary(direct_gaps_ms)
    rate, direct_rate = summary(rates), summary(direct_rates)
    zero = "direct Triton client (0 by definition)"
    gap_name = "gap at a direct Triton client"
    pace = f"(model {TOKEN_DELAY_MS} ms/token)"
    rows = [
        row("added latency per token p50 (worker stamp -> SSE)", "ms", added["p50"], 0.0, zero),
        row("added latency per token p99 (worker stamp -> SSE)", "ms", added["p99"], 0.0, zero),
        row("  of which Kafka p50 (stamp -> consumer)", "ms", kafka["p50"], None, ""),
        row("  of which bridge p50 (consumer -> SSE client)", "ms", bridge["p50"], None, ""),
        row("  of which Kafka p99", "ms", kafka["p99"], None, ""),
        row("  of which bridge p99", "ms", bridge["p99"], None, ""),
        row(f"gap between tokens p50 {pace}", "ms", gaps["p50"], direct_gaps["p50"], gap_name),
        row(f"gap between tokens p99 {pace}", "ms", gaps["p99"], direct_gaps["p99"], gap_name),
        row("tokens/s per stream at the client", "1/s", rate["p50"], direct_rate["p50"], "direct Triton stream"),
        row(
            "GPU worker CPU per token",
            "ms",
            1000 * worker_cpu_s / worker_tokens,
            1000 * direct_cpu_s / direct_tokens,
            DIRECT_CLIENT,
        ),
    ]
    measured: dict[str, Any] = {
        "added_ms": added,
        "kafka_ms": kafka,
        "bridge_ms": bridge,
        "gap_ms": gaps,
        "direct_gap_ms": direct_gaps,
        "tokens_per_s": rate,
        "direct_tokens_per_s": direct_rate,
        "gpu_worker_cpu_s": worker_cpu_s,
        "gpu_worker_tokens": worker_tokens,
        "direct_client_cpu_s": direct_cpu_s,
        "direct_client_tokens": direct_tokens,
    }
    return {
        "title": "Per-token added latency",
        "method": __doc__,
        "rows": rows,
        "measured": measured,
        "series": {"added_ms": added_ms, "gaps_ms": gaps_ms, "direct_gaps_ms": direct_gaps_ms},
    }
