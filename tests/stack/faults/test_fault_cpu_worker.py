"""Fault 2: the CPU worker is SIGKILLed inside preprocess or postprocess: the stage is retried on the worker
the supervisor restarts, the job completes, and the stages that had finished do not run again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from devstack.reliability import Record
from jobstream import cursors
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.faults.scenario import MODEL_SLOT, STAGES
from tests.stack.job_service_client import Stub, auth, submit, wait_terminal
from tests.stack.sse_client import TERMINAL_EVENTS, follow_reconnecting, sse_client
from tests.stack.sse_story import add_audit, audit_stream, check_story, expected_ids
from tests.stack.stack_processes import current_pid, kill_process, wait_restarted
from tests.stack.temporal_history import activity_names, activity_starts, history_of, local_stage_attempts

TOKENS = 30


async def wait_running(client: Client, job_id: str, activity: str, timeout_s: float = 120.0) -> None:
    """Until the job's `activity` has been picked up by a worker (its pending activity is STARTED)."""
    handle = client.get_workflow_handle(job_id)
    async with asyncio.timeout(timeout_s):
        while True:
            description = await handle.describe()
            for pending in description.raw_description.pending_activities:
                started = pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                if pending.activity_type.name == activity and started:
                    return
            await asyncio.sleep(0.1)


async def kill_during_job(
    stub: Stub,
    api_key: str,
    stack: Settings,
    reliability: Record,
    pipeline: str,
    wait_inside: Callable[[str], Awaitable[None]],
    on_event: Callable[[Any], None] | None = None,
) -> str:
    """Submit a job of `pipeline`, SIGKILL the CPU worker once `wait_inside(job_id)` returns, follow the job to
    its end, and check that it completed with every event once; the job's id, for its history."""
    reply = await submit(stub, api_key, "The clerk left mid-sentence", pipeline=pipeline, max_tokens=TOKENS)
    async with sse_client() as client:
        follower = asyncio.create_task(follow_reconnecting(client, reply.events_url, on_event=on_event, timeout_s=240))
        await wait_inside(reply.job_id)
        killed_at = time.monotonic()
        old = kill_process(stack, "cpu-worker")
        reliability.inputs += 1
        try:
            followed = await follower
        finally:
            await wait_restarted(stack, "cpu-worker", old)
    job = await wait_terminal(stub, api_key, reply.job_id, timeout_s=240)
    recovered_s = time.monotonic() - killed_at
    reliability.jobs += 1
    add_audit(reliability, audit_stream(reply.job_id, followed.events, expected_ids(len(STAGES), MODEL_SLOT, TOKENS)))
    reliability.note(f"job done {recovered_s:.0f} s after the kill")

    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
    story = check_story(reply.job_id, followed.events, STAGES)
    assert story.tokens == TOKENS
    assert story.text == story.result_text == job.result_text
    return reply.job_id


@pytest.mark.parametrize("stage", ["preprocess", "postprocess"])
async def test_cpu_worker_killed_inside_a_stage_retries_only_that_stage(
    stage: str, stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = f"2. CPU worker SIGKILLed during {stage}"

    async def inside(job_id: str) -> None:
        await wait_running(temporal_client, job_id, stage)

    # drill-slow-cpu: preprocess and postprocess each take 3 s, so the kill lands inside the stage.
    job_id = await kill_during_job(stub, api_key, stack, reliability, "drill-slow-cpu", inside)
    history = await history_of(temporal_client, job_id)
    scheduled = list(activity_names(history).values())
    attempts = {
        name: activity_starts(history, name)[0].activity_task_started_event_attributes.attempt
        for name in ("preprocess", "run_model", "postprocess")
    }
    # Each stage was scheduled once; the killed one needed a second attempt, the others ran once.
    assert [scheduled.count(name) for name in ("preprocess", "run_model", "postprocess")] == [1, 1, 1], scheduled
    assert attempts[stage] >= 2, attempts
    finished_before = {"preprocess": [], "postprocess": ["preprocess", "run_model"]}[stage]
    assert all(attempts[name] == 1 for name in finished_before), attempts


@pytest.mark.parametrize("stage", ["preprocess", "postprocess"])
async def test_cpu_worker_killed_inside_a_local_stage_runs_it_again(
    stage: str, stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    """A local stage runs inside the workflow task: the kill is noticed by that task's timeout (10 s), and
    the restarted worker runs the task again, the stage's events again (same ids) and the stage with them."""
    reliability.fault = f"2. CPU worker SIGKILLed during a local {stage}"
    index = STAGES.index(stage)
    started = asyncio.Event()

    def watch(event: Any) -> None:
        if event.id == cursors.stage_started(index):
            started.set()

    async def inside(_: str) -> None:
        await asyncio.wait_for(started.wait(), 120)
        await asyncio.sleep(0.5)  # inside the 3 s stage

    # drill-slow-local: its local preprocess and postprocess each take 3 s; their stage.started goes out first.
    job_id = await kill_during_job(stub, api_key, stack, reliability, "drill-slow-local", inside, on_event=watch)
    history = await history_of(temporal_client, job_id)
    # The model ran once; each local stage left one marker (the killed task's run left none).
    (run_model,) = activity_starts(history, "run_model")
    assert run_model.activity_task_started_event_attributes.attempt == 1
    assert len(local_stage_attempts(history)) == 2
    kinds = [event.event_type for event in history.events]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT in kinds


async def test_a_stalled_worker_cannot_end_the_story_against_the_recorded_verdict(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    """The CPU worker stops (a GC pause, a frozen VM: SIGSTOP here) inside the job's last local stage, a cancel
    lands, and the worker resumes after its workflow task has timed out. The stream's terminal event must be
    the verdict the job records, whichever it is: the stale task's stage may still say it completed, but the
    job's end is published only by the task whose verdict stands."""
    reliability.fault = "2. CPU worker stalled (SIGSTOP) in the last local stage while the job is cancelled"
    postprocess = cursors.stage_started(STAGES.index("postprocess"))
    inside = asyncio.Event()

    def watch(event: Any) -> None:
        if event.id == postprocess:
            inside.set()

    reply = await submit(stub, api_key, "The clerk froze mid-sentence", pipeline="drill-slow-local", max_tokens=8)
    async with sse_client() as client:
        follower = asyncio.create_task(follow_reconnecting(client, reply.events_url, on_event=watch, timeout_s=120))
        await asyncio.wait_for(inside.wait(), 120)
        await asyncio.sleep(0.5)  # inside the 3 s stage
        stalled = current_pid(stack, "cpu-worker")
        os.kill(stalled, signal.SIGSTOP)
        try:
            await stub.CancelJob(api.CancelJobRequest(job_id=reply.job_id, reason="stalled"), metadata=auth(api_key))
            await asyncio.sleep(12)  # past the workflow task's timeout (10 s)
        finally:
            os.kill(stalled, signal.SIGCONT)
        reliability.inputs += 1
        followed = await follower
    job = await wait_terminal(stub, api_key, reply.job_id)
    reliability.jobs += 1
    terminal = [event.event for event in followed.events if event.event in TERMINAL_EVENTS]
    said = {"job.completed": JobStatus.JOB_STATUS_SUCCEEDED, "job.cancelled": JobStatus.JOB_STATUS_CANCELLED}
    reliability.note(f"stream ended with {terminal}; the job is {JobStatus.Name(job.status)}")
    assert len(terminal) == 1, terminal
    assert said.get(terminal[0]) == job.status, (terminal, JobStatus.Name(job.status))
