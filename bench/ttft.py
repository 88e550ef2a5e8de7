"""Figure 2: time to first token, SubmitJob call -> first token at an SSE client, and what each hop costs.

Baseline: tinylm streamed straight from Triton (aio stream_infer on a warm client), same prompt, seed and
per-token delay (the model default, 5 ms): call -> first token at the client. Jobs and direct calls
alternate, so both see the same machine.

Hops, which add up to our time to first token exactly (clocks: this machine's, Temporal's history and
the worker stamps are all the same wall clock):
  submit -> workflow started      JobService (auth, validation) and Temporal's start
  Temporal scheduling             workflow tasks and activity dispatch before the model stage starts,
                                  including the four job/stage events published before the first token
                                  (local activities inside workflow tasks, Kafka acks=all)
  preprocess                      the preprocess activity's own run time
  model stage -> first token      run_model started -> its first token stamped (Triton client, model)
  Kafka                           token stamped -> a Kafka consumer configured like the bridge's has it
  bridge                          that consumer -> the SSE client (routing, JSON, HTTP)

The Responses API's time to first token (bench/responses_ttft.py), alternating with the jobs too.

Temporal's floor (bench/temporal_floor.py), alternating with the jobs: start_workflow -> the first activity
started on another worker, for a workflow that does nothing else. Against it: ours from SubmitJob to the model
stage's start (the first three hops), and what jobstream adds above the floor. Both trips are also split in
their histories' times (start -> first workflow task started, that task, the activity's dispatch), side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tritonclient.grpc.aio as triton

from bench.common import PROMPT, Context, Figure, row, summary
from bench.history import FIRST_TRIP, activity_spans, first_trip_split, workflow_started
from bench.job_run import run_job
from bench.kafka_tap import KafkaTap, kafka_tap
from bench.responses_ttft import responses_first_token
from bench.temporal_floor import floor_trip, floor_workers
from bench.triton_direct import direct_stream

PIPELINE = "generate"
MAX_TOKENS = 8
HOPS = (
    "submit -> workflow started",
    "Temporal scheduling",
    "preprocess",
    "model stage -> first token",
    "Kafka",
    "bridge",
)


@dataclass(frozen=True)
class Sizes:
    jobs: int


async def run(ctx: Context, sizes: Sizes) -> Figure:
    ttft_ms: list[float] = []
    direct_ms: list[float] = []
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    floor_ms: list[float] = []
    responses_ms: list[float] = []
    # The trip to the model stage in the history's segments, ours and the floor's: where the difference is.
    split: dict[str, list[float]] = {segment: [] for segment in FIRST_TRIP}
    floor_split: dict[str, list[float]] = {segment: [] for segment in FIRST_TRIP}
    client = triton.InferenceServerClient(ctx.settings.triton_grpc_url)
    try:
        await direct_stream(client, PROMPT, MAX_TOKENS, None)  # warm the channel: the baseline is a warm client
        async with kafka_tap(ctx.settings) as tap, floor_workers(ctx.temporal):
            await floor_trip(ctx.temporal)  # warm: the workers' first poll and the workflow's first sandbox
            for _ in range(sizes.jobs):
                direct = await direct_stream(client, PROMPT, MAX_TOKENS, None)
                direct_ms.append((direct.received[0] - direct.started) * 1000)
                trip = await floor_trip(ctx.temporal)
                floor_ms.append(trip.seconds * 1000)
                responses_ms.append(await responses_first_token(ctx, MAX_TOKENS) * 1000)
                job = await run_job_tapped(ctx, tap)
                first = job["first"]
                ttft_ms.append((first["received"] - job["submitted"]) * 1000)
                for hop, seconds in job["hops"].items():
                    hops[hop].append(seconds * 1000)
                for segment in FIRST_TRIP:
                    split[segment].append(job["split"][segment] * 1000)
                    floor_split[segment].append(trip.split[segment] * 1000)
    finally:
        await client.close()
    ours, base = summary(ttft_ms), summary(direct_ms)
    baseline_name = "Triton stream_infer direct"
    rows = [
        row("time to first token p50", "ms", ours["p50"], base["p50"], baseline_name),
        row("time to first token p99", "ms", ours["p99"], base["p99"], baseline_name),
        row("TTFT overhead over direct, p50", "ms", ours["p50"] - base["p50"], None, "", "ours p50 - direct p50"),
        row(
            "time to first token p50 through the Responses API (POST /v1/responses, stream)",
            "ms",
            summary(responses_ms)["p50"],
            ours["p50"],
            "the same job through SubmitJob and /v1/jobs SSE",
        ),
    ]
    hop_medians = {hop: summary(values)["p50"] for hop, values in hops.items()}
    for hop, value in hop_medians.items():
        rows.append(row(f"TTFT hop p50: {hop}", "ms", value, None, "", "medians; they sum to about the TTFT"))
    to_model = [sum(trip) for trip in zip(*(hops[hop] for hop in HOPS[:3]), strict=True)]
    floor = summary(floor_ms)["p50"]
    floor_name = "Temporal's floor: start -> first activity started on another worker"
    rows.append(row("submit -> model stage started, p50", "ms", summary(to_model)["p50"], floor, floor_name))
    rows.append(
        row("what jobstream adds above Temporal's floor, p50", "ms", summary(to_model)["p50"] - floor, None, "")
    )
    for segment in FIRST_TRIP:
        ours_p50, floor_p50 = summary(split[segment])["p50"], summary(floor_split[segment])["p50"]
        rows.append(row(f"trip to the model, p50: {segment}", "ms", ours_p50, floor_p50, "the floor's"))
    return {
        "title": "Time to first token",
        "method": __doc__,
        "rows": rows,
        "measured": {
            "ttft_ms": ours,
            "direct_ttft_ms": base,
            "hops_ms": {h: summary(v) for h, v in hops.items()},
            "temporal_floor_ms": summary(floor_ms),
            "responses_ttft_ms": summary(responses_ms),
            "first_trip_ms": {segment: summary(values) for segment, values in split.items()},
            "floor_first_trip_ms": {segment: summary(values) for segment, values in floor_split.items()},
        },
        "series": {"ttft_ms": ttft_ms, "direct_ms": direct_ms, "hop_p50_ms": hop_medians},
    }


async def run_job_tapped(ctx: Context, tap: KafkaTap) -> dict[str, Any]:
    """Run one job with the tap watching it; returns its timings and hop breakdown (seconds)."""
    # The tap learns the job id when SubmitJob answers: well before the first token, hundreds of ms later.
    job = await run_job(ctx, PIPELINE, MAX_TOKENS, on_reply=tap.watch)
    first = job.tokens[0]
    history = await ctx.temporal.get_workflow_handle(job.job_id).fetch_history()
    started = workflow_started(history)
    spans = activity_spans(history)
    model = next(span for span in spans if span.name == "run_model")
    assert model.started is not None
    before = [s for s in spans if s.completed is not None and s.completed <= model.started]
    preprocess = sum(s.ran_s for s in before if s.name == "preprocess")
    tapped = tap.at(job.job_id, first.event_id)
    if tapped is None:  # not expected (the tail starts before the submit); keep the hops summing exactly
        tapped = first.stamped
    hops = {
        "submit -> workflow started": started - job.submitted,
        "Temporal scheduling": (model.started - started) - preprocess,
        "preprocess": preprocess,
        "model stage -> first token": first.stamped - model.started,
        "Kafka": tapped - first.stamped,
        "bridge": first.received - tapped,
    }
    split = first_trip_split(history, "run_model")
    return {"submitted": job.submitted, "first": {"received": first.received}, "hops": hops, "split": split}
