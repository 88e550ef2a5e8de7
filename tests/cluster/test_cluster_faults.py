"""The cluster's fault matrix, as `make test` runs it: each fault strikes while jobs stream tokens to SSE clients
through the edge, and every client must still see each event of its job exactly once, in order, with every job
succeeding with the streamed text. (`jobstream reliability --cluster` runs the same tests and reports them.)"""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import httpx
from temporalio.client import Client

from devstack import postgres
from devstack.cluster import BRIDGE_PORTS, JOB_SERVICE_PORTS, MINIO_NODES, frontend_serving, postgres_ready
from devstack.reliability import Record
from devstack.stack import file_ready, grpc_serving, http_ok
from jobstream.partitioning import partition_of
from jobstream.search_attributes import tenant_term
from jobstream.settings import Settings
from jobstream.temporal_client import connect
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from jobstream.workflow_io import JOB_WORKFLOWS
from tests.cluster.nodes import Cluster
from tests.stack.faults.scenario import model_attempts, stream_through_fault
from tests.stack.job_service_client import Stub, auth, params, post_upload, submit, wait_terminal
from tests.stack.tenants import tenant_key


async def test_kafka_node_leading_a_streaming_jobs_partition_killed(
    cluster: Cluster, edge: Settings, stub: Stub, api_key: str, reliability: Record
) -> None:
    reliability.fault = "C1. Kafka node leading a streaming job's partition SIGKILLed"
    submitted: list[str] = []
    recovered: list[float] = []

    async def kill_leader() -> None:
        node = await cluster.partition_leader(submitted[0])
        role = f"kafka-{node}"
        killed_at = time.monotonic()
        old = cluster.kill(role)
        reliability.inputs += 1
        await cluster.wait_restarted(role, old, cluster.kafka_node_ready(node))
        recovered.append(time.monotonic() - killed_at)
        reliability.note(f"killed {role}, the leader; back in {recovered[0]:.0f} s")

    outcomes = await stream_through_fault(stub, api_key, edge, reliability, kill_leader, submitted=submitted)
    reconnects = sum(stream.connections - 1 for outcome in outcomes for stream in outcome.streams)
    reliability.note(f"{reconnects} SSE reconnects")
    assert recovered, "the killed Kafka node never came back"


async def test_bridge_replica_killed_with_many_streams_open(
    cluster: Cluster, edge: Settings, stub: Stub, api_key: str, reliability: Record, full_suite: bool
) -> None:
    """The edge sends each stream to the bridge that tails its job's partition; the one that owns the first
    job's dies, its clients reconnect through the edge to the other (the dead one is skipped at once) and resume
    after their last event."""
    reliability.fault = "C2. One SSE bridge replica SIGKILLed with many streams open"
    jobs, followers = (6, 50) if full_suite else (4, 25)
    submitted: list[str] = []
    killed: list[int] = []

    def owner(job_id: str) -> int:
        return partition_of(job_id, edge.events_partitions) % len(BRIDGE_PORTS)

    async def kill_bridge() -> None:
        # The first job's owner: a fixed replica might own none of a few random jobs (4 jobs: 1 in 16).
        index = owner(submitted[0])
        killed.append(index)
        old = cluster.kill(f"sse-bridge-{index + 1}")
        reliability.inputs += 1
        ready = http_ok(f"http://{edge.host}:{BRIDGE_PORTS[index]}/healthz")
        await cluster.wait_restarted(f"sse-bridge-{index + 1}", old, ready)

    # Long enough jobs (15 s) that every stream is open before the first one reaches the strike.
    outcomes = await stream_through_fault(
        stub, api_key, edge, reliability, kill_bridge, jobs=jobs, followers=followers, tokens=300, submitted=submitted
    )
    connections = [stream.connections for outcome in outcomes for stream in outcome.streams]
    reconnected = sum(count > 1 for count in connections)
    reliability.note(f"{len(connections)} streams, {reconnected} reconnected")
    # Every stream of a job the killed replica owned was on it, open, when it died.
    on_killed = [
        stream.connections
        for outcome in outcomes
        if owner(outcome.reply.job_id) in killed
        for stream in outcome.streams
    ]
    assert on_killed, "the killed replica owned no job"
    assert all(count > 1 for count in on_killed), on_killed


async def test_job_service_replica_killed_during_a_burst_of_idempotent_submits(
    cluster: Cluster, edge: Settings, stub: Stub, reliability: Record, full_suite: bool
) -> None:
    """Clients retry a failed SubmitJob through the edge with the same idempotency key: one job per key."""
    reliability.fault = "C3. One JobService replica SIGKILLed during a burst of submits with idempotency keys"
    count = 120 if full_suite else 60
    with tenant_key(edge, "burst") as (tenant, key):
        replies: dict[str, set[str]] = {}
        retries = 0
        killed = asyncio.Event()
        third_answered = asyncio.Event()

        async def submit_until_answered(n: int) -> None:
            nonlocal retries
            idempotency_key = f"burst-{n}"
            async with asyncio.timeout(120):
                while True:
                    try:
                        reply = await submit(stub, key, f"Burst {n}", max_tokens=4, idempotency_key=idempotency_key)
                        replies.setdefault(idempotency_key, set()).add(reply.job_id)
                        if len(replies) >= count // 3:
                            third_answered.set()
                        return
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() != grpc.StatusCode.UNAVAILABLE:
                            raise
                        retries += 1
                        await asyncio.sleep(0.2)

        async def kill_after_some() -> None:
            await third_answered.wait()
            old = cluster.kill("job-service-1")
            killed.set()
            reliability.inputs += 1
            direct = {"grpc_port": JOB_SERVICE_PORTS[0], "server_ca_file": None}
            ready = grpc_serving(edge.model_copy(update=direct))
            await cluster.wait_restarted("job-service-1", old, ready)

        killer = asyncio.create_task(kill_after_some())
        for wave in range(0, count, 10):
            await asyncio.gather(*(submit_until_answered(n) for n in range(wave, min(wave + 10, count))))
        await killer
        assert killed.is_set()
        reliability.jobs += count
        reliability.note(f"{retries} submits retried")
        assert len(replies) == count
        assert all(len(ids) == 1 for ids in replies.values()), "a retried key got a second job"
        temporal = await connect(edge)
        started = await count_jobs(temporal, tenant, count)
        reliability.duplicated += max(0, started - count)
        reliability.lost += max(0, count - started)
        assert started == count


async def test_temporal_node_killed_mid_stream(
    cluster: Cluster, edge: Settings, stub: Stub, api_key: str, reliability: Record
) -> None:
    """Its history shards move to the other node; the balancer sends every client there meanwhile."""
    reliability.fault = "C4. One Temporal node SIGKILLed mid-stream"

    async def kill_node() -> None:
        killed_at = time.monotonic()
        old = cluster.kill("temporal-1")
        reliability.inputs += 1
        await cluster.wait_restarted("temporal-1", old, frontend_serving(cluster.layout.temporal_addresses[0]))
        reliability.note(f"temporal-1 back in {time.monotonic() - killed_at:.0f} s")

    await stream_through_fault(stub, api_key, edge, reliability, kill_node)


async def test_postgresql_stopped_and_restarted_mid_job(
    cluster: Cluster, edge: Settings, stub: Stub, api_key: str, reliability: Record
) -> None:
    """Temporal's store goes away (a fast shutdown, then the supervisor starts it again): jobs pause, then
    finish; tokens already flowing keep flowing, since they do not pass through Temporal."""
    reliability.fault = "C5. PostgreSQL stopped and restarted mid-job"

    async def restart_database() -> None:
        stopped_at = time.monotonic()
        old = cluster.kill("postgres", signal.SIGINT)
        reliability.inputs += 1
        await cluster.wait_restarted("postgres", old, postgres_ready(cluster.layout, postgres.BIN_DIR))
        reliability.note(f"PostgreSQL back in {time.monotonic() - stopped_at:.0f} s")

    await stream_through_fault(stub, api_key, edge, reliability, restart_database)


async def test_minio_node_killed_during_claim_checked_jobs_and_uploads(
    cluster: Cluster, edge: Settings, stub: Stub, api_key: str, reliability: Record
) -> None:
    """Four drives, parity two: with one server dead every object is still read and written. Prompts past the
    payload threshold travel through the store, and uploads are made while the server is down."""
    reliability.fault = "C6. One MinIO server SIGKILLed during claim-checked jobs and uploads"
    uploaded: list[str] = []

    async def kill_store() -> None:
        old = cluster.kill("minio-2")
        reliability.inputs += 1
        async with httpx.AsyncClient(timeout=30) as http:
            for n in range(3):
                upload = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(api_key))
                assert (await post_upload(http, upload, f"Uploaded {n} while a drive is away".encode())).is_success
                request = api.SubmitJobRequest(input_ref=upload.input_ref, params=params(max_tokens=4))
                uploaded.append((await stub.SubmitJob(request, metadata=auth(api_key))).job_id)
        for job_id in uploaded:
            job = await wait_terminal(stub, api_key, job_id)
            assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
        live = http_ok(f"http://{edge.host}:{MINIO_NODES[1][0]}/minio/health/live")
        await cluster.wait_restarted("minio-2", old, live)

    big = edge.payload_threshold_bytes + 50_000
    await stream_through_fault(stub, api_key, edge, reliability, kill_store, prompt_bytes=big)
    reliability.jobs += len(uploaded)
    assert len(uploaded) == 3


async def test_gpu_worker_replica_killed_mid_stream(
    cluster: Cluster, edge: Settings, stub: Stub, api_key: str, reliability: Record
) -> None:
    """The replica running the first job's model stage dies; the stage's retry (on either replica) continues
    after the tokens clients saw."""
    reliability.fault = "C7. The GPU worker replica running a stage SIGKILLed mid-stream"
    submitted: list[str] = []
    temporal = await connect(edge)

    async def kill_running_worker() -> None:
        description = await temporal.get_workflow_handle(submitted[0]).describe()
        (activity,) = [a for a in description.raw_description.pending_activities if a.last_worker_identity]
        pid = int(activity.last_worker_identity.split("@", 1)[0])
        role = next(role for role, known in cluster.endpoints().processes.items() if known == pid)
        assert role.startswith("gpu-worker-"), role
        old = cluster.kill(role)
        reliability.inputs += 1
        reliability.note(f"killed {role}")
        await cluster.wait_restarted(role, old, file_ready(role, edge))

    outcomes = await stream_through_fault(stub, api_key, edge, reliability, kill_running_worker, submitted=submitted)
    attempts = await model_attempts(temporal, outcomes)
    reliability.note(f"run_model attempts {attempts}")
    assert attempts[0] >= 2, attempts


async def count_jobs(client: Client, tenant: str, expected: int) -> int:
    """The tenant's jobs in Temporal's visibility, once it has caught up with `expected` (or after 30 s)."""
    query = f"{JOB_WORKFLOWS} AND {tenant_term(tenant)}"
    deadline = time.monotonic() + 30
    while True:
        counted = (await client.count_workflows(query)).count
        if counted >= expected or time.monotonic() > deadline:
            return counted
        await asyncio.sleep(0.5)
