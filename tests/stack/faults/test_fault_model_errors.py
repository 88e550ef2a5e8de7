"""Fault 8: the model's injected GPU out-of-memory error is retried with backoff and the job completes; when
every attempt fails the job is FAILED with the reason; a non-retryable input error fails at once, once.

Each job is followed by an SSE client, which must see every event once and the failure's reason."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from temporalio.client import Client

from devstack.reliability import Record
from jobstream import cursors
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.faults.scenario import MODEL_SLOT, STAGES
from tests.stack.job_service_client import Stub, auth, post_upload, submit, wait_terminal
from tests.stack.sse_client import follow_reconnecting, sse_client
from tests.stack.sse_parser import SseEvent
from tests.stack.sse_story import add_audit, audit_stream, check_story, expected_ids
from tests.stack.temporal_history import activity_names, activity_starts, history_of, local_stage_attempts
from tests.stack.triton_log import triton_log_match

PROMPT = "The memory ran out at the worst moment"


def stamped(event: SseEvent) -> float:
    """When the event was made (its `time`, stamped by the worker that published it), in epoch seconds."""
    return datetime.fromisoformat(str(event.json["time"]).replace("Z", "+00:00")).timestamp()


async def test_out_of_memory_once_is_retried_after_a_backoff_and_completes(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "8. model out of memory once (retried with backoff)"
    tokens = 40
    reply = await submit(stub, api_key, PROMPT, pipeline="drill-oom-once", max_tokens=tokens)
    reliability.inputs += 1
    async with sse_client() as client:
        followed = await follow_reconnecting(client, reply.events_url)
    reliability.jobs += 1
    add_audit(reliability, audit_stream(reply.job_id, followed.events, expected_ids(3, MODEL_SLOT, tokens)))

    story = check_story(reply.job_id, followed.events, STAGES)
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
    assert story.tokens == tokens
    assert story.text == story.result_text == job.result_text
    (run_model,) = activity_starts(await history_of(temporal_client, reply.job_id), "run_model")
    started = run_model.activity_task_started_event_attributes
    assert started.attempt == 2
    assert "out of memory" in started.last_failure.message.lower()
    # The retry waited its backoff (initial interval 1 s): token 5 was made that much after token 4.
    made = {event.json["index"]: stamped(event) for event in followed.events if event.event == "token"}
    pause = made[5] - made[4]
    reliability.note(f"pause at the failure {pause:.1f} s")
    assert pause >= 0.95, pause
    # The retry continued the 5 delivered tokens: it asked for the 35 left.
    await triton_log_match(stack, reply.job_id, r"start input_tokens=\d+ input_sha256=\w+ max_tokens=35 .* attempt=2")


async def test_out_of_memory_on_every_attempt_fails_with_the_reason(
    stub: Stub, api_key: str, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "8. model out of memory on every attempt"
    reply = await submit(stub, api_key, PROMPT, pipeline="drill-oom-always", max_tokens=16)
    reliability.inputs += 1
    async with sse_client() as client:
        followed = await follow_reconnecting(client, reply.events_url)
    # Each of the 3 attempts continues its predecessor's tokens and fails after 3 more of its own: tokens
    # 0-8, then the failure.
    expected = [*expected_ids(3, MODEL_SLOT, 9)[:-4], cursors.terminal()]
    reliability.jobs += 1
    add_audit(reliability, audit_stream(reply.job_id, followed.events, expected))

    assert [event.id for event in followed.events] == expected
    failed = followed.events[-1]
    assert failed.event == "job.failed"
    assert failed.json["error"]["code"] == "GpuOutOfMemory"
    assert "out of memory" in failed.json["error"]["message"].lower()
    assert failed.json["stage"] == "generate"
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_FAILED
    assert (job.error.code, job.error.message) == ("GpuOutOfMemory", failed.json["error"]["message"])
    history = await history_of(temporal_client, reply.job_id)
    (run_model,) = activity_starts(history, "run_model")
    assert run_model.activity_task_started_event_attributes.attempt == 3  # the drill's maximum_attempts
    assert local_stage_attempts(history) == [1]  # preprocess only: postprocess never ran
    # Backoff 200 ms then 400 ms between the three attempts: the pauses before tokens 3 and 6.
    made = {event.json["index"]: stamped(event) for event in followed.events if event.event == "token"}
    pauses = (made[3] - made[2], made[6] - made[5])
    reliability.note(f"pauses between attempts {pauses[0]:.1f} s, {pauses[1]:.1f} s")
    assert pauses[0] >= 0.19, pauses
    assert pauses[1] >= 0.38, pauses


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"caf\xe9 au lait \xff\xfe", "utf-8"), (" \t\n\u3000 ".encode(), "empty")],
    ids=["invalid-utf8", "blank"],
)
async def test_a_non_retryable_input_error_fails_at_once_without_retries(
    content: bytes, reason: str, stub: Stub, api_key: str, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = f"8. non-retryable input error ({'invalid UTF-8' if reason == 'utf-8' else 'blank'} upload)"
    upload: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(api_key))
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await post_upload(http, upload, content)).is_success
    reply: api.SubmitJobResponse = await stub.SubmitJob(
        api.SubmitJobRequest(input_ref=upload.input_ref), metadata=auth(api_key)
    )
    reliability.inputs += 1
    async with sse_client() as client:
        followed = await follow_reconnecting(client, reply.events_url)
    expected = [cursors.job_started(), cursors.stage_started(0), cursors.terminal()]
    reliability.jobs += 1
    add_audit(reliability, audit_stream(reply.job_id, followed.events, expected))

    assert [event.id for event in followed.events] == expected
    failed = followed.events[-1].json
    assert failed["type"] == "job.failed"
    assert failed["error"]["code"] == "InvalidInput"
    assert reason in failed["error"]["message"].lower()
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert (job.status, job.error.code, job.stage) == (JobStatus.JOB_STATUS_FAILED, "InvalidInput", "preprocess")
    history = await history_of(temporal_client, reply.job_id)
    assert local_stage_attempts(history) == [1]  # preprocess (a local stage), not retried
    assert "run_model" not in activity_names(history).values()
