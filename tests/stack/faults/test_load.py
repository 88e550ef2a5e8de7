"""Load: many concurrent jobs, each followed by its own SSE client that checks its whole stream — zero lost,
duplicated or misrouted events, and every job ends SUCCEEDED with the text its client saw.

CI runs it reduced (20 jobs x 50 tokens); `--full` (or `jobstream reliability --full`) runs 200 x 200."""

from __future__ import annotations

import asyncio
import time

import pytest

from devstack.reliability import Record
from jobstream.settings import Settings
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.faults.scenario import MODEL_SLOT, STAGES
from tests.stack.job_service_client import Stub, get_job, submit, wait_terminal
from tests.stack.sse_client import Followed, follow_reconnecting, sse_client
from tests.stack.sse_story import add_audit, audit_stream, check_story, expected_ids


@pytest.mark.timeout(1800)
async def test_concurrent_jobs_each_stream_exactly_their_own_events(
    stub: Stub, api_key: str, stack: Settings, full_suite: bool, reliability: Record
) -> None:
    jobs, tokens = (200, 200) if full_suite else (20, 50)
    reliability.fault = f"load: {jobs} concurrent jobs x {tokens} tokens, one SSE client each"
    started = time.monotonic()
    replies = await asyncio.gather(
        *(submit(stub, api_key, f"Load {n}: the crowd pressed on", max_tokens=tokens, seed=n) for n in range(jobs))
    )
    reliability.inputs += jobs
    assert len({reply.job_id for reply in replies}) == jobs
    limit_s = 1500 if full_suite else 240
    async with sse_client(read_timeout_s=120) as client:
        streams: list[Followed] = await asyncio.gather(
            *(follow_reconnecting(client, reply.events_url, timeout_s=limit_s) for reply in replies)
        )
    streamed_s = time.monotonic() - started
    reliability.jobs += jobs
    expected = expected_ids(len(STAGES), MODEL_SLOT, tokens)
    for reply, stream in zip(replies, streams, strict=True):
        add_audit(reliability, audit_stream(reply.job_id, stream.events, expected))
    reconnects = sum(stream.connections - 1 for stream in streams)
    reliability.note(f"all streams complete in {streamed_s:.0f} s, {reconnects} reconnects")

    finished = await asyncio.gather(*(wait_terminal(stub, api_key, reply.job_id) for reply in replies))
    for reply, stream, job in zip(replies, streams, finished, strict=True):
        # check_story: every event once, in order, each naming this job (nothing misrouted).
        story = check_story(reply.job_id, stream.events, STAGES)
        assert story.tokens == tokens
        assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
        assert story.text == story.result_text == job.result_text
    assert (reliability.lost, reliability.duplicated, reliability.misrouted) == (0, 0, 0)
    # GetJob agrees with the streams after the fact, too.
    sample = await get_job(stub, api_key, replies[-1].job_id)
    assert sample.tokens_generated == tokens
