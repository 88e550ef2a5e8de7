"""Fault 9: a job cancelled mid-stream is CANCELLED within 2 s, Triton stops generating, and the SSE stream
ends with job.cancelled after each token it delivered exactly once."""

from __future__ import annotations

import asyncio
import time

from devstack.reliability import Record
from jobstream import cursors
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus, StageState
from tests.stack.faults.scenario import MODEL_SLOT
from tests.stack.job_service_client import Stub, auth, get_job, submit
from tests.stack.sse_client import follow_reconnecting, sse_client
from tests.stack.sse_parser import SseEvent
from tests.stack.sse_story import add_audit, audit_stream
from tests.stack.triton_log import triton_log_match, triton_streams

TOKENS = 200  # 10 s at drill-slow's 50 ms per token: far from done when it is cancelled


async def test_cancel_mid_stream_is_cancelled_within_2_s_and_the_stream_ends_with_job_cancelled(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    reliability.fault = "9. cancel mid-stream"
    reply = await submit(stub, api_key, "Stop the presses", pipeline="drill-slow", max_tokens=TOKENS)
    cancelled_after: list[float] = []

    async def cancel_at_token_10(event: SseEvent) -> None:
        if cancelled_after or event.event != "token" or event.json["index"] < 10:
            return
        asked = time.monotonic()
        await stub.CancelJob(api.CancelJobRequest(job_id=reply.job_id, reason="fault 9"), metadata=auth(api_key))
        reliability.inputs += 1
        while (await get_job(stub, api_key, reply.job_id)).status != JobStatus.JOB_STATUS_CANCELLED:
            assert time.monotonic() - asked < 10, "not CANCELLED 10 s after CancelJob"
            await asyncio.sleep(0.05)
        cancelled_after.append(time.monotonic() - asked)

    async with sse_client() as client:
        followed = await follow_reconnecting(client, reply.events_url, cancel_at_token_10)
    events = followed.events
    tokens = [event.json["index"] for event in events if event.event == "token"]
    slot = MODEL_SLOT
    expected = [cursors.job_started(), cursors.stage_started(0), cursors.stage_completed(0), cursors.stage_started(1)]
    expected += [cursors.token(slot, index) for index in range(len(tokens))] + [cursors.terminal()]
    reliability.jobs += 1
    add_audit(reliability, audit_stream(reply.job_id, events, expected))

    assert cancelled_after, "the stream ended before token 10"
    reliability.note(f"CANCELLED {cancelled_after[0]:.2f} s after CancelJob")
    assert cancelled_after[0] < 2.0
    assert events[-1].event == "job.cancelled"
    # The reason given to CancelJob reaches the event, GetJob and the cancelled stage's record.
    assert events[-1].json["reason"] == "fault 9"
    job = await get_job(stub, api_key, reply.job_id)
    assert job.cancel_reason == "fault 9"
    assert [(stage.name, StageState.Name(stage.state)) for stage in job.stages] == [
        ("preprocess", "STAGE_STATE_SUCCEEDED"),
        ("generate", "STAGE_STATE_CANCELLED"),
        ("postprocess", "STAGE_STATE_PENDING"),
    ]
    assert [event.id for event in events] == expected, [event.id for event in events]
    assert tokens == list(range(len(tokens)))
    # Triton saw the stream cancelled long before its end, and never finished it.
    stopped = await triton_log_match(stack, reply.job_id, r"cancelled after (\d+) tokens")
    assert len(tokens) <= int(stopped.group(1)) < TOKENS // 2
    # Nothing started it again: every stream Triton ever started for this job ended cancelled (a retry would
    # have started a new one at once, still running here).
    await asyncio.sleep(1.0)
    assert set(triton_streams(stack, reply.job_id).values()) == {"cancelled after"}, triton_streams(stack, reply.job_id)
