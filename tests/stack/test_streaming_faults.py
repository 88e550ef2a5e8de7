"""Token streaming under stress against the real stack: a GPU worker SIGKILLed mid-stream, and a hundred
concurrent SSE clients on one bridge."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from temporalio.client import Client

from devstack.reliability import Record
from jobstream.event_log import parse_event
from jobstream.settings import Settings
from jobstream.v1.job_pb2 import JobStatus, StageState
from jobstream.v1.job_service_pb2_grpc import JobServiceStub
from tests.stack.job_service_client import Stub, submit, wait_terminal
from tests.stack.sse_client import events_url, read_stream, sse_client, sse_connect
from tests.stack.sse_parser import SseEvent
from tests.stack.sse_story import add_audit, audit_stream, check_story, expected_ids
from tests.stack.temporal_history import activity_starts, history_of, local_stage_attempts

STAGES = ["preprocess", "generate", "postprocess"]
GPU_ROLE = "gpu-worker-tinylm"


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        yield JobServiceStub(channel)


def ready_pid(settings: Settings, role: str) -> int:
    return int((settings.state_dir / "run" / f"{role}.ready").read_text().strip())


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


async def wait_replaced(settings: Settings, role: str, old_pid: int, timeout_s: float = 180.0) -> int:
    """The supervisor's replacement: a new pid in the readiness file, written by the new worker once ready."""
    async with asyncio.timeout(timeout_s):
        while True:
            pid = ready_pid(settings, role)
            if pid != old_pid and alive(pid):
                return pid
            await asyncio.sleep(0.2)


def resume_points(settings: Settings, job_id: str) -> dict[int, int]:
    """attempt -> the token index the GPU worker's run_model resumed at, from its log."""
    log = (settings.logs_dir / f"{GPU_ROLE}.log").read_text(errors="replace")
    # The line's job context, as jobstream.logs writes it: `[job_id=<job> ...]: <message>`.
    pattern = re.compile(r"\[job_id=" + job_id + r"[\] ].*: model tinylm attempt (\d+) resumes at token (\d+) ")
    return {int(m.group(1)): int(m.group(2)) for m in pattern.finditer(log)}


async def published_token_indexes(settings: Settings, client: Client, job_id: str) -> list[int]:
    """Every token record of the job in the Kafka log, duplicates included (what the workers really sent)."""
    memo = await (await client.get_workflow_handle(job_id).describe()).memo()
    tp = TopicPartition(settings.events_topic, int(memo["log_partition"]))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, int(memo["log_offset"]))
        indexes: list[int] = []
        async with asyncio.timeout(60):
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.key == job_id.encode() and record.value is not None:
                        event = parse_event(record.value)
                        if event.type == "token":
                            indexes.append(event.token.index)
        return indexes
    finally:
        await consumer.stop()


async def test_sigkill_of_the_gpu_worker_mid_stream_loses_and_repeats_no_token(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "1. GPU worker SIGKILLed mid-stream"
    old_pid = ready_pid(stack, GPU_ROLE)
    assert alive(old_pid)
    reply = await submit(
        stub, api_key, "The worker will not see the end of this", pipeline="drill-slow", max_tokens=120
    )
    events: list[SseEvent] = []
    killed_after = -1
    try:
        url = events_url(stack.bridge_url, reply.job_id, reply.stream_token)
        async with sse_client() as client, asyncio.timeout(240), sse_connect(client, url) as stream:
            assert stream.response.status_code == 200
            async for event in stream.events():
                events.append(event)
                if event.event == "token" and event.json["index"] == 19 and killed_after < 0:
                    assert ready_pid(stack, GPU_ROLE) == old_pid, "the worker was replaced before the kill"
                    os.kill(old_pid, signal.SIGKILL)
                    reliability.inputs += 1
                    killed_after = 20
    finally:
        # Later tests need a GPU worker: wait for the supervisor's replacement whatever happened above.
        new_pid = await wait_replaced(stack, GPU_ROLE, old_pid) if killed_after > 0 else old_pid
    reliability.jobs += 1
    add_audit(reliability, audit_stream(reply.job_id, events, expected_ids(len(STAGES), 1, 120)))
    assert killed_after == 20, "the stream ended before the 20th token"
    assert new_pid != old_pid
    # The one client saw every token exactly once, in order, and the text is the result.
    story = check_story(reply.job_id, events, STAGES)
    assert story.tokens == 120
    assert story.text == story.result_text
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED
    assert job.result_text == story.text
    # Temporal retried the model stage on the new worker ...
    history = await history_of(temporal_client, reply.job_id)
    (run_model,) = activity_starts(history, "run_model")
    assert run_model.activity_task_started_event_attributes.attempt >= 2
    # ... and nothing before it ran again: the local preprocess ran once, at its first attempt (as did
    # postprocess, after the model).
    assert local_stage_attempts(history) == [1, 1]
    reliability.note(f"run_model attempt {run_model.activity_task_started_event_attributes.attempt}")
    # The finished job still shows the retry: in GetJob's stages, and in the model's stage.completed event.
    model_stage = next(stage for stage in job.stages if stage.kind == "model")
    assert model_stage.attempts == run_model.activity_task_started_event_attributes.attempt
    assert (model_stage.state, model_stage.tokens_generated) == (StageState.STAGE_STATE_SUCCEEDED, 120)
    assert [stage.attempts for stage in job.stages if stage.kind != "model"] == [1, 1]
    model_completed = next(e for e in events if e.event == "stage.completed" and e.json["stage"] == model_stage.name)
    assert model_completed.json["attempt"] == model_stage.attempts
    # ... which resumed after the tokens its killed predecessor had published, not from scratch.
    resumed = resume_points(stack, reply.job_id)
    assert resumed.get(1) == 0, resumed
    retry = max(resumed)
    assert retry >= 2, resumed
    assert resumed[retry] >= killed_after, resumed
    published = await published_token_indexes(stack, temporal_client, reply.job_id)
    assert set(published) == set(range(120))
    repeated = sum(count - 1 for count in Counter(published).values())
    assert repeated < resumed[retry], f"{repeated} tokens published twice, resumed at {resumed[retry]}"


async def follow_job(client: httpx.AsyncClient, url: str) -> list[SseEvent]:
    return await read_stream(client, url, timeout_s=240)


async def test_a_hundred_concurrent_clients_each_get_their_own_job_complete_and_in_order(
    stub: Stub, api_key: str, stack: Settings
) -> None:
    jobs, clients_per_job, max_tokens = 25, 4, 30
    started = time.monotonic()
    replies = await asyncio.gather(
        *(submit(stub, api_key, f"Crowd number {n} enters the room", max_tokens=max_tokens) for n in range(jobs))
    )
    job_ids = [reply.job_id for reply in replies]
    assert len(set(job_ids)) == jobs
    async with sse_client(read_timeout_s=120) as client, asyncio.timeout(240):
        streams = await asyncio.gather(
            *(follow_job(client, reply.events_url) for reply in replies for _ in range(clients_per_job))
        )
    elapsed = time.monotonic() - started
    print(f"\n{jobs * clients_per_job} SSE clients on {jobs} jobs: all complete after {elapsed:.1f}s")
    for n, reply in enumerate(replies):
        own = streams[n * clients_per_job : (n + 1) * clients_per_job]
        for events in own:
            # check_story asserts every data names this job: no event of another job slipped in.
            story = check_story(reply.job_id, events, STAGES)
            assert story.tokens == max_tokens
            assert story.text == story.result_text
        # The four clients of a job saw the very same events.
        first = [(e.id, e.data) for e in own[0]]
        assert all([(e.id, e.data) for e in events] == first for events in own[1:])
    finished = await asyncio.gather(*(wait_terminal(stub, api_key, job_id) for job_id in job_ids))
    assert all(job.status == JobStatus.JOB_STATUS_SUCCEEDED for job in finished)
