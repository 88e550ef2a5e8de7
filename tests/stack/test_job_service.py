"""JobService acceptance, part 1: a job's life — submit, run both pipelines, cancel, retry, fail.

Every job here is checked against an independent witness: Triton called directly for the expected text,
the workflow's Temporal history for timing and attempts, Triton's own log for generation stopping.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.event_pb2 import JobEvent
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.job_service_client import Stub, auth, job_service, post_upload, submit, wait_terminal
from tests.stack.temporal_history import activity_names, activity_starts, events_of, history_of, local_stage_attempts
from tests.stack.triton_direct import keywords_tokens, normalise_prompt, tinylm_tokens
from tests.stack.triton_log import triton_log_match, triton_streams

JOB_ID = re.compile(r"^job_[a-z2-7]{26}$")
PROMPT = "  It is a truth\n\tuniversally   acknowledged,\n\n that a  single man "


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


async def watch_events(stub: Stub, api_key: str, job_id: str) -> list[JobEvent]:
    """The job's whole event stream from WatchJob, up to and including its terminal event."""
    events = []
    async for response in stub.WatchJob(api.WatchJobRequest(job_id=job_id), metadata=auth(api_key)):
        events.append(response.event)
    return events


# -- 1. submit answers at once ------------------------------------------------------------------------


async def test_submit_answers_queued_with_an_events_url_before_any_stage_starts(
    stub: Stub, api_key: str, temporal_client: Client
) -> None:
    response = await submit(stub, api_key, max_tokens=8)
    returned = datetime.now(UTC)

    assert response.status == JobStatus.JOB_STATUS_QUEUED
    assert JOB_ID.match(response.job_id), response.job_id
    url = urlparse(response.events_url)
    assert url.scheme == "http"
    assert url.path == f"/v1/jobs/{response.job_id}/events"
    assert response.stream_token
    assert parse_qs(url.query)["token"] == [response.stream_token]
    # Durably recorded: the job's workflow exists the moment SubmitJob has answered.
    await temporal_client.get_workflow_handle(response.job_id).describe()

    await wait_terminal(stub, api_key, response.job_id)
    history = await history_of(temporal_client, response.job_id)
    started = events_of(history, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert started, "the job ran no activity at all"
    first_start = min(event.event_time.ToDatetime(tzinfo=UTC) for event in started)
    # Same machine, same clock: SubmitJob's answer reached the client before any activity ran.
    print(f"SubmitJob answered {(first_start - returned).total_seconds() * 1000:.1f} ms before the first activity")
    assert returned < first_start


# -- 2. both pipelines succeed with the models' own output ------------------------------------------------


async def test_generate_succeeds_with_exactly_what_tinylm_produces(stub: Stub, api_key: str, stack: Settings) -> None:
    submitted_at = datetime.now(UTC)
    response = await submit(stub, api_key, PROMPT, max_tokens=24, seed=11, temperature=0.7)
    job = await wait_terminal(stub, api_key, response.job_id)

    expected = "".join(await tinylm_tokens(stack, normalise_prompt(PROMPT), max_tokens=24, seed=11, temperature=0.7))
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
    assert job.WhichOneof("result") == "result_text"
    assert job.result_text == expected
    assert job.pipeline == "generate"
    assert job.stage == "postprocess"
    assert job.stage_count == 3
    assert job.stages_completed == 3
    assert job.progress == 1.0
    assert job.tokens_generated == 24
    assert not job.HasField("error")
    created, updated = job.create_time.ToDatetime(tzinfo=UTC), job.update_time.ToDatetime(tzinfo=UTC)
    assert submitted_at - timedelta(seconds=5) <= created <= updated <= datetime.now(UTC)
    assert updated > created, "update_time must move when the job finishes"


async def test_generate_keywords_returns_the_keywords_of_tinylms_output(
    stub: Stub, api_key: str, stack: Settings
) -> None:
    response = await submit(stub, api_key, PROMPT, pipeline="generate-keywords", max_tokens=32, seed=3)
    job = await wait_terminal(stub, api_key, response.job_id)

    generated = "".join(await tinylm_tokens(stack, normalise_prompt(PROMPT), max_tokens=32, seed=3))
    keywords = await keywords_tokens(stack, generated)
    assert keywords, f"tinylm's output has no keywords, pick another seed: {generated!r}"
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
    assert job.result_text == "".join(keywords)
    assert job.stage == "postprocess"
    assert job.stage_count == 4
    assert job.stages_completed == 4
    assert job.progress == 1.0
    # The job's output is its last model stage's: one token per keyword.
    assert job.tokens_generated == len(keywords)


# -- 3. cancel ----------------------------------------------------------------------------------------------


async def test_cancel_stops_the_job_and_triton_within_two_seconds(stub: Stub, api_key: str, stack: Settings) -> None:
    response = await submit(stub, api_key, pipeline="drill-slow", max_tokens=200, seed=5)
    job_id = response.job_id
    events: list[JobEvent] = []
    third_token = asyncio.Event()

    async def watch() -> None:
        async for message in stub.WatchJob(api.WatchJobRequest(job_id=job_id), metadata=auth(api_key)):
            events.append(message.event)
            if message.event.type == "token" and message.event.token.index >= 2:
                third_token.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(third_token.wait(), timeout=60)

    asked = time.monotonic()
    cancel: api.CancelJobResponse = await stub.CancelJob(
        api.CancelJobRequest(job_id=job_id, reason="test"), metadata=auth(api_key)
    )
    assert cancel.job.job_id == job_id
    while (job := (await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(api_key))).job).status in (
        JobStatus.JOB_STATUS_QUEUED,
        JobStatus.JOB_STATUS_RUNNING,
    ):
        assert time.monotonic() - asked < 10, "not cancelled after 10 s"
        await asyncio.sleep(0.05)
    took = time.monotonic() - asked
    print(f"CANCELLED {took * 1000:.0f} ms after CancelJob")
    assert job.status == JobStatus.JOB_STATUS_CANCELLED, job
    assert took < 2.0

    await asyncio.wait_for(watcher, timeout=30)
    assert events[-1].type == "job.cancelled"
    tokens = [event for event in events if event.type == "token"]
    # Triton itself saw the stream cancelled, long before it would have reached max_tokens (10 s at 50 ms).
    stopped = await triton_log_match(stack, job_id, r"cancelled after (\d+) tokens")
    sent = int(stopped.group(1))
    print(f"Triton stopped after {sent} of 200 tokens; the client saw {len(tokens)}")
    assert len(tokens) <= sent < 100
    # Nothing started it again: a retry would start a new stream at once, and it would still be running (or
    # done) here. Every stream Triton ever started for this job ended cancelled.
    await asyncio.sleep(1.0)
    assert set(triton_streams(stack, job_id).values()) == {"cancelled after"}, triton_streams(stack, job_id)


# -- 4. a retryable failure is retried, and resumes exactly once -------------------------------------------


async def test_a_job_cancelled_right_after_submit_ends_cancelled(stub: Stub, api_key: str) -> None:
    # A cancel that lands while the first stage is being scheduled can reach that stage only after it has
    # finished; the job must end CANCELLED all the same, not run on to SUCCEEDED.
    jobs = []
    for n in range(4):
        job_id = (await submit(stub, api_key, f"Chapter {n}", pipeline="drill-slow", max_tokens=100)).job_id
        await stub.CancelJob(api.CancelJobRequest(job_id=job_id), metadata=auth(api_key))
        jobs.append(job_id)
    for job_id in jobs:
        job = await wait_terminal(stub, api_key, job_id)
        assert job.status == JobStatus.JOB_STATUS_CANCELLED, (job_id, job)


async def test_oom_once_is_retried_and_resumes_to_the_fault_free_text(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client
) -> None:
    drill, plain = await asyncio.gather(
        submit(stub, api_key, PROMPT, pipeline="drill-oom-once", max_tokens=16, seed=13),
        submit(stub, api_key, PROMPT, pipeline="generate", max_tokens=16, seed=13),
    )
    drilled, reference = await asyncio.gather(
        wait_terminal(stub, api_key, drill.job_id), wait_terminal(stub, api_key, plain.job_id)
    )
    assert drilled.status == JobStatus.JOB_STATUS_SUCCEEDED, drilled
    assert reference.status == JobStatus.JOB_STATUS_SUCCEEDED, reference
    assert drilled.result_text == reference.result_text
    assert drilled.tokens_generated == 16

    history = await history_of(temporal_client, drill.job_id)
    (model,) = activity_starts(history, "run_model")
    attributes = model.activity_task_started_event_attributes
    assert attributes.attempt == 2
    assert "out of memory" in attributes.last_failure.message.lower()
    # The second attempt asked Triton to continue the 5 tokens the first one had already published.
    await triton_log_match(stack, drill.job_id, r"start input_tokens=\d+ input_sha256=\w+ max_tokens=11 .* attempt=2")
    # ... so each token index reached the event stream once, and together they are the result.
    tokens = [event.token for event in await watch_events(stub, api_key, drill.job_id) if event.type == "token"]
    assert [token.index for token in tokens] == list(range(16))
    assert "".join(token.text for token in tokens) == drilled.result_text


# -- 5. attempts exhausted ----------------------------------------------------------------------------------


async def test_oom_always_fails_with_gpu_out_of_memory_after_its_attempts(
    stub: Stub, api_key: str, temporal_client: Client
) -> None:
    response = await submit(stub, api_key, pipeline="drill-oom-always", max_tokens=16)
    job = await wait_terminal(stub, api_key, response.job_id)

    assert job.status == JobStatus.JOB_STATUS_FAILED, job
    assert job.error.code == "GpuOutOfMemory"
    assert "out of memory" in job.error.message.lower()
    assert job.WhichOneof("result") is None
    history = await history_of(temporal_client, response.job_id)
    (model,) = activity_starts(history, "run_model")
    assert model.activity_task_started_event_attributes.attempt == 3  # the drill's maximum_attempts
    assert local_stage_attempts(history) == [1]  # preprocess only: postprocess never ran


# -- 6. a non-retryable failure ends the job at once --------------------------------------------------------


async def test_invalid_utf8_upload_fails_invalid_input_after_one_attempt(
    stub: Stub, api_key: str, temporal_client: Client
) -> None:
    upload: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(api_key))
    async with httpx.AsyncClient(timeout=30) as http:
        put = await post_upload(http, upload, b"caf\xe9 au lait \xff\xfe")
    assert put.is_success, put.text
    request = api.SubmitJobRequest(input_ref=upload.input_ref)
    response: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=auth(api_key))
    job = await wait_terminal(stub, api_key, response.job_id)

    assert job.status == JobStatus.JOB_STATUS_FAILED, job
    assert job.error.code == "InvalidInput"
    assert "utf-8" in job.error.message.lower()
    assert job.stage == "preprocess"
    history = await history_of(temporal_client, response.job_id)
    assert local_stage_attempts(history) == [1]  # preprocess (a local stage), not retried
    assert "run_model" not in activity_names(history).values()
