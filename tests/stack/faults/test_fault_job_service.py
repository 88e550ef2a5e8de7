"""Fault 4: the JobService is SIGKILLed while its jobs stream (and while a SubmitJob is in flight): the jobs
run on, the restarted service reports them correctly, and a client retrying SubmitJob with its idempotency
key gets the same job, never a second one."""

from __future__ import annotations

import asyncio
import secrets

import grpc
from temporalio.client import Client

from devstack.reliability import Record
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.faults.scenario import MODEL_SLOT, STAGES
from tests.stack.job_service_client import Stub, get_job, job_service, submit
from tests.stack.sse_client import follow_reconnecting, sse_client
from tests.stack.sse_parser import SseEvent
from tests.stack.sse_story import add_audit, audit_stream, check_story, expected_ids
from tests.stack.stack_processes import kill_process, wait_restarted

TOKENS = 120
PIPELINE = "drill-slow"


async def submit_retrying(settings: Settings, api_key: str, key: str, prompt: str) -> api.SubmitJobResponse:
    """A client that does not know whether its submission got through: it repeats it, same key, until answered."""
    for _ in range(600):
        try:
            async with job_service(settings) as stub:
                return await submit(stub, api_key, prompt, pipeline=PIPELINE, max_tokens=TOKENS, idempotency_key=key)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:  # only "the service is away" is worth a retry
                raise
        await asyncio.sleep(0.5)
    raise AssertionError("SubmitJob never answered")


async def executions(client: Client, job_id: str) -> int:
    """How many workflow runs carry this job id: one job, one run."""
    return len([execution async for execution in client.list_workflows(f"WorkflowId = '{job_id}'")])


async def test_job_service_killed_jobs_run_on_and_idempotent_retries_get_the_same_job(
    stub: Stub, api_key: str, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "4. JobService SIGKILLed (with jobs running and a SubmitJob in flight)"
    keys = [f"fault4-{secrets.token_hex(8)}-{n}" for n in range(3)]
    prompts = [f"The front desk closed early {n}" for n in range(4)]
    replies = [
        await submit(stub, api_key, prompts[n], pipeline=PIPELINE, max_tokens=TOKENS, idempotency_key=key)
        for n, key in enumerate(keys)
    ]
    in_flight_key = f"fault4-{secrets.token_hex(8)}-in-flight"
    in_flight: list[asyncio.Task[api.SubmitJobResponse]] = []

    async def kill_service() -> None:
        # A submission on the wire as the service dies: its client cannot know whether the job exists.
        in_flight.append(asyncio.create_task(submit_retrying(stack, api_key, in_flight_key, prompts[3])))
        await asyncio.sleep(0.01)
        old = kill_process(stack, "job-service")
        reliability.inputs += 1
        await wait_restarted(stack, "job-service", old)

    fault: list[asyncio.Task[None]] = []

    def trigger(event: SseEvent) -> None:
        if not fault and event.event == "token" and event.json["index"] >= 20:
            fault.append(asyncio.create_task(kill_service()))

    async with sse_client() as client:
        followed = await asyncio.gather(
            *(
                follow_reconnecting(client, reply.events_url, trigger if n == 0 else None)
                for n, reply in enumerate(replies)
            )
        )
        assert fault, "the first job ended before the kill"
        await fault[0]
        late = await in_flight[0]
        late_followed = await follow_reconnecting(client, late.events_url)
    expected = expected_ids(len(STAGES), MODEL_SLOT, TOKENS)
    reliability.jobs += len(replies) + 1
    for reply, stream in zip([*replies, late], [*followed, late_followed], strict=True):
        add_audit(reliability, audit_stream(reply.job_id, stream.events, expected))

    # The jobs ran on without the service, and its successor reports each one as it ended.
    for reply, stream in zip(replies, followed, strict=True):
        story = check_story(reply.job_id, stream.events, STAGES)
        job = await get_job(stub, api_key, reply.job_id)
        assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
        assert (job.result_text, job.tokens_generated, job.progress) == (story.text, TOKENS, 1.0), job
    # Retrying each submission with its key answers with the job already there.
    for n, (key, reply) in enumerate(zip(keys, replies, strict=True)):
        again = await submit_retrying(stack, api_key, key, prompts[n])
        assert again.job_id == reply.job_id
        assert again.status == JobStatus.JOB_STATUS_SUCCEEDED
    # The submission in flight at the kill became exactly one job, whichever side of the kill it landed on.
    again = await submit_retrying(stack, api_key, in_flight_key, prompts[3])
    assert again.job_id == late.job_id
    check_story(late.job_id, late_followed.events, STAGES)
    for reply in [*replies, late]:
        assert await executions(temporal_client, reply.job_id) == 1
