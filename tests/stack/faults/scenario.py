"""The shape most fault tests share: jobs stream to SSE clients, a fault strikes mid-stream, every client
must still see each event of its job exactly once, and every job must succeed with the streamed text."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio.client import Client

from devstack.reliability import Record
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import Job, JobStatus
from tests.stack.job_service_client import Stub, submit, wait_terminal
from tests.stack.sse_client import Followed, follow_reconnecting, sse_client
from tests.stack.sse_parser import SseEvent
from tests.stack.sse_story import add_audit, audit_stream, check_story, expected_ids
from tests.stack.temporal_history import activity_starts, history_of

STAGES = ["preprocess", "generate", "postprocess"]
MODEL_SLOT = 1


@dataclass(frozen=True)
class Outcome:
    reply: api.SubmitJobResponse
    streams: list[Followed]  # one per client following the job; the first one triggers the fault
    job: Job

    @property
    def followed(self) -> Followed:
        return self.streams[0]


async def stream_through_fault(
    stub: Stub,
    api_key: str,
    settings: Settings,
    record: Record,
    fault: Callable[[], Awaitable[None]],
    *,
    jobs: int = 3,
    followers: int = 1,
    tokens: int = 120,
    pipeline: str = "drill-slow",
    strike_at: int = 20,
    timeout_s: float = 300.0,
    submitted: list[str] | None = None,
    prompt_bytes: int = 0,
) -> list[Outcome]:
    """Run `jobs` jobs, each followed by `followers` reconnecting SSE clients of its own; when the first job's
    first client has seen token `strike_at`, await `fault()` (the job ids are in `submitted` by then, where
    given). With `prompt_bytes` each prompt is that long (past the payload threshold, it is claim-checked
    through the object store). Audits every stream into `record`, then checks each story."""

    replies = [
        await submit(stub, api_key, fault_prompt(n, prompt_bytes), pipeline=pipeline, max_tokens=tokens)
        for n in range(jobs)
    ]
    if submitted is not None:
        submitted += [reply.job_id for reply in replies]
    struck = asyncio.Event()
    fault_task: list[asyncio.Task[None]] = []
    # The fault strikes only once every client is following (has had an event), so that it meets them all.
    following: set[int] = set()

    def opened(number: int) -> Callable[[SseEvent], None]:
        return lambda _event: following.add(number)

    def trigger(event: SseEvent) -> None:
        following.add(0)
        if len(following) < jobs * followers:
            return
        if not struck.is_set() and event.event == "token" and event.json["index"] >= strike_at:
            struck.set()
            # The fault runs beside the clients: they keep reading (and reconnecting) while it strikes.
            fault_task.append(asyncio.ensure_future(fault()))

    async with sse_client(read_timeout_s=60, ca_file=settings.server_ca_file) as client:
        streams = [
            follow_reconnecting(
                client, reply.events_url, trigger if n == i == 0 else opened(n * followers + i), timeout_s=timeout_s
            )
            for n, reply in enumerate(replies)
            for i in range(followers)
        ]
        followed = await asyncio.gather(*streams)
    if fault_task:
        await fault_task[0]
    record.jobs += jobs
    pause = max(stream.longest_pause_s for stream in followed)
    record.note(f"longest pause at a client {pause:.1f} s")
    per_job = [followed[n * followers : (n + 1) * followers] for n in range(jobs)]
    audit_streams(record, replies, per_job, tokens)
    assert struck.is_set(), "the first job ended before the fault could strike"
    finished = [await wait_terminal(stub, api_key, reply.job_id, timeout_s=timeout_s) for reply in replies]
    outcomes = [Outcome(r, f, j) for r, f, j in zip(replies, per_job, finished, strict=True)]
    check_outcomes(outcomes, tokens)
    return outcomes


def fault_prompt(n: int, prompt_bytes: int) -> str:
    """Job `n`'s prompt; with `prompt_bytes` it is that long, padded by repeating its sentence."""
    text = f"Fault drill {n}: the lamps went out. "
    return (text * (prompt_bytes // len(text) + 1))[: max(prompt_bytes, len(text))]


def audit_streams(
    record: Record, replies: list[api.SubmitJobResponse], per_job: list[list[Followed]], tokens: int
) -> None:
    """Count every client's stream into `record`: measured before anything is asserted, so the report has it."""
    expected = expected_ids(len(STAGES), MODEL_SLOT, tokens)
    for reply, job_streams in zip(replies, per_job, strict=True):
        for stream in job_streams:
            add_audit(record, audit_stream(reply.job_id, stream.events, expected))


def check_outcomes(outcomes: list[Outcome], tokens: int) -> None:
    """Every client saw its job's whole story exactly once, and every job succeeded with the streamed text."""
    for outcome in outcomes:
        for stream in outcome.streams:
            story = check_story(outcome.reply.job_id, stream.events, STAGES)
            assert story.tokens == tokens
            assert story.text == story.result_text
            assert outcome.job.result_text == story.text
        assert outcome.job.status == JobStatus.JOB_STATUS_SUCCEEDED, outcome.job


async def model_attempts(client: Client, outcomes: list[Outcome]) -> list[int]:
    """Per job, the attempt of its model stage that succeeded (from the workflow's Temporal history)."""
    attempts = []
    for outcome in outcomes:
        (run_model,) = activity_starts(await history_of(client, outcome.reply.job_id), "run_model")
        attempts.append(run_model.activity_task_started_event_attributes.attempt)
    return attempts
