"""Fault 12: one tenant's backlog on a model's task queue must not hold another tenant's job behind all of
it (issue 22, finding 10). Each job carries its tenant as Temporal's fairness key, so a backlog is served
round-robin between tenants; without it the queue is FIFO and the late tenant's job starts last."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from temporalio.client import Client

from devstack.reliability import Record
from jobstream.settings import Settings
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.job_service_client import Stub, submit, wait_terminal
from tests.stack.stack_processes import current_pid
from tests.stack.temporal_history import activity_starts, history_of
from tests.stack.tenants import tenant_with_limits

BACKLOG = 30  # jobs of the busy tenant queued on the model stage before the other tenant's one arrives


async def wait_model_stage_scheduled(client: Client, job_ids: list[str], timeout_s: float = 60.0) -> None:
    """Until each job's model stage is on its task queue (scheduled, not necessarily started)."""
    deadline = time.monotonic() + timeout_s
    waiting = set(job_ids)
    while waiting:
        assert time.monotonic() < deadline, f"{len(waiting)} jobs never reached their model stage"
        for job_id in list(waiting):
            description = await client.get_workflow_handle(job_id).describe()
            if description.raw_description.pending_activities:
                waiting.discard(job_id)
        await asyncio.sleep(0.2)


async def test_a_tenants_backlog_on_the_model_queue_does_not_hold_back_another_tenant(
    stub: Stub, stack: Settings, temporal_client: Client, reliability: Record
) -> None:
    reliability.fault = "12. one tenant's backlog on a model queue (GPU worker stopped while it builds)"
    with (
        tenant_with_limits(stack, "busy", max_running_jobs=BACKLOG + 5) as (_, busy_key),
        tenant_with_limits(stack, "quiet", max_running_jobs=5) as (_, quiet_key),
    ):
        worker = current_pid(stack, "gpu-worker-tinylm")
        os.kill(worker, signal.SIGSTOP)  # the queue can only grow while no model stage is taken from it
        try:
            busy = [
                (await submit(stub, busy_key, f"backlog {n}", pipeline="drill-slow", max_tokens=4, seed=n)).job_id
                for n in range(BACKLOG)
            ]
            await wait_model_stage_scheduled(temporal_client, busy)
            quiet = (await submit(stub, quiet_key, "just one", pipeline="drill-slow", max_tokens=4)).job_id
            await wait_model_stage_scheduled(temporal_client, [quiet])
        finally:
            os.kill(worker, signal.SIGCONT)
        reliability.inputs += BACKLOG + 1
        for job_id, key in [*((job_id, busy_key) for job_id in busy), (quiet, quiet_key)]:
            job = await wait_terminal(stub, key, job_id, timeout_s=120)
            assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, (job_id, job.status)
        reliability.jobs += BACKLOG + 1

    started: dict[str, float] = {}
    for job_id in [*busy, quiet]:
        (start,) = activity_starts(await history_of(temporal_client, job_id), "run_model")
        started[job_id] = start.event_time.ToNanoseconds() / 1e9
    order = sorted(started, key=started.__getitem__)
    rank = order.index(quiet) + 1
    reliability.note(f"the quiet tenant's model stage started {rank} of {BACKLOG + 1}")
    # The stopped worker's open polls take the first few tasks in arrival order (all the busy tenant's); from
    # the backlog on, the tenants alternate. First-in-first-out would start the quiet job last.
    assert rank <= 12, [("quiet" if job_id == quiet else "busy") for job_id in order]
