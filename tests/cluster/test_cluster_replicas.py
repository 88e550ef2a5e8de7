"""Correct across replicas: what each JobService or bridge replica counts alone still holds for a tenant spread
over both (the bounds the README states), an idempotency key gives one job whichever replica takes it, the edge
refuses a flood with the API's own errors, and presigned URLs verify through the internal balancer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.cluster import JOB_SERVICE_PORTS
from devstack.cluster_services import REPLICAS, replica_environment, replica_settings, replicas
from jobstream.connections import job_service_channel
from jobstream.partitioning import partition_of
from jobstream.settings import Settings, get_settings
from jobstream.temporal_client import connect
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams, JobStatus
from tests.cluster.nodes import Cluster
from tests.cluster.test_cluster_faults import count_jobs
from tests.stack.job_service_client import Stub, auth, job_service, post_upload, rpc_error, submit, wait_terminal
from tests.stack.sse_client import sse_client, sse_connect
from tests.stack.tenants import tenant_key, tenant_with_limits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def replica_stubs(edge: Settings) -> AsyncIterator[list[Stub]]:
    """A stub on each JobService replica directly, bypassing the edge (plaintext, on loopback)."""
    async with contextlib.AsyncExitStack() as stack:
        direct = [edge.model_copy(update={"grpc_port": port, "server_ca_file": None}) for port in JOB_SERVICE_PORTS]
        yield [await stack.enter_async_context(job_service(settings)) for settings in direct]


async def test_one_idempotency_key_sent_to_both_replicas_at_once_gives_one_job(edge: Settings) -> None:
    keys = [f"both-{n}" for n in range(10)]
    with tenant_key(edge, "twice") as (tenant, key):
        async with replica_stubs(edge) as stubs:
            replies = await asyncio.gather(
                *(submit(stub, key, f"Twice {k}", max_tokens=2, idempotency_key=k) for k in keys for stub in stubs)
            )
        pairs = [replies[n : n + REPLICAS] for n in range(0, len(replies), REPLICAS)]
        assert all(len({reply.job_id for reply in pair}) == 1 for pair in pairs), pairs
        assert await count_jobs(await connect(edge), tenant, len(keys)) == len(keys)


async def test_the_running_jobs_quota_holds_for_a_tenant_submitting_to_both_replicas(edge: Settings) -> None:
    """Limit 3, 16 slow jobs at once, half on each replica: at most limit + replicas - 1 start."""
    limit = 3
    with tenant_with_limits(edge, "quota", max_running_jobs=limit) as (_, key):
        async with replica_stubs(edge) as stubs:

            async def one(n: int) -> api.SubmitJobResponse | None:
                stub = stubs[n % REPLICAS]
                try:
                    return await submit(stub, key, f"Quota {n}", pipeline="drill-slow", max_tokens=200)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc  # noqa: PT017
                    return None

            started = [reply for reply in await asyncio.gather(*(one(n) for n in range(16))) if reply]
            for reply in started:
                await stubs[0].CancelJob(api.CancelJobRequest(job_id=reply.job_id), metadata=auth(key))
    assert 1 <= len(started) <= limit + REPLICAS - 1, len(started)


async def test_the_stream_limit_holds_for_a_tenant_whose_streams_land_on_both_bridges(
    edge: Settings, stub: Stub
) -> None:
    """Limit 4 streams, 12 opened through the edge at once: the bridge owning the job's partition admits its share
    (2; its backup would admit 2 more), the rest get 429."""
    limit = 4
    with tenant_with_limits(edge, "streams", max_streams=limit) as (_, key):
        reply = await submit(stub, key, "Streams", pipeline="drill-slow", max_tokens=200)
        statuses: list[int] = []
        async with (
            sse_client(read_timeout_s=30, ca_file=edge.server_ca_file) as client,
            contextlib.AsyncExitStack() as held,
        ):
            for _ in range(12):
                connection = await held.enter_async_context(sse_connect(client, reply.events_url))
                statuses.append(connection.response.status_code)
        await stub.CancelJob(api.CancelJobRequest(job_id=reply.job_id), metadata=auth(key))
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 429}, statuses
    assert 1 <= admitted <= limit, statuses


async def test_the_edge_refuses_an_anonymous_flood_with_the_apis_own_errors_and_serves_keyed_callers(
    edge: Settings, api_key: str
) -> None:
    context = ssl.create_default_context(cafile=str(edge.server_ca_file))
    async with httpx.AsyncClient(verify=context, timeout=10.0) as http:
        flood = await asyncio.gather(*(http.get(f"{edge.bridge_url}/healthz") for _ in range(150)))
        refused = [response for response in flood if response.status_code == 429]
        assert refused, [response.status_code for response in flood]
        assert refused[0].json()["error"]["code"] == "resource_exhausted"
        assert refused[0].headers["retry-after"] == "1"
        # A caller with a key has its own budget, untouched by the anonymous flood.
        keyed = await http.get(f"{edge.bridge_url}/v1/jobs", headers={"authorization": f"Bearer {api_key}"})
        assert keyed.status_code == 200, keyed.text
    async with job_service_channel(edge) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        calls = [health.Check(health_pb2.HealthCheckRequest(), timeout=10) for _ in range(150)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    codes = {exc.code() for exc in outcomes if isinstance(exc, grpc.aio.AioRpcError)}
    assert codes == {grpc.StatusCode.RESOURCE_EXHAUSTED}, outcomes[:3]


async def test_a_presigned_upload_verifies_through_the_internal_balancer(edge: Settings, stub: Stub) -> None:
    with tenant_key(edge, "upload") as (_, key):
        upload: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(key))
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await post_upload(http, upload, b"It is a truth universally acknowledged")).is_success
        request = api.SubmitJobRequest(input_ref=upload.input_ref, params=GenerationParams(max_tokens=4, seed=1))
        reply = await stub.SubmitJob(request, metadata=auth(key))
        job = await wait_terminal(stub, key, reply.job_id)
        assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
        bad = await rpc_error(stub.SubmitJob(api.SubmitJobRequest(input_ref="uploads/nobody/x"), metadata=auth(key)))
        assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("JOBSTREAM_STREAM_TOKEN_SECRET", "another-secret-" + "x" * 32, "JOBSTREAM_STREAM_TOKEN_SECRET"),
        ("JOBSTREAM_EVENTS_PARTITIONS", "16", "JOBSTREAM_EVENTS_PARTITIONS"),
    ],
)
async def test_a_replica_that_disagrees_with_the_others_refuses_to_start(
    cluster: Cluster, setting: str, value: str, named: str
) -> None:
    """A third bridge, on ports of its own, configured unlike the running replicas: it exits, naming why."""
    ports = {"bridge_port": free_port(), "bridge_metrics_port": free_port()}
    env = os.environ | replica_environment(replica_settings(cluster.layout, get_settings()), **ports) | {setting: value}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sse_bridge", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode != 0
    assert named.encode() in output, output[-2000:]


async def _gauge(http: httpx.AsyncClient, port: int, name: str) -> float:
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


async def test_the_edge_sends_each_stream_to_the_bridge_that_tails_its_partition(
    cluster: Cluster, edge: Settings, stub: Stub, api_key: str
) -> None:
    """Streams of jobs on every partition, through the edge: each bridge serves the streams of the partitions it
    owns and follows no other for them (a misrouted one would make it follow another partition). An earlier
    test's failover may leave a bridge following another's partitions for a while (dropped 30 s after its last
    client): what this test's streams add is what counts."""
    children = replicas(cluster.layout, replica_settings(cluster.layout, get_settings()))
    metrics = [int(child.env["JOBSTREAM_BRIDGE_METRICS_PORT"]) for child in children if child.name.startswith("sse-")]
    replies = [await submit(stub, api_key, pipeline="drill-slow", max_tokens=200) for _ in range(16)]
    owners = [partition_of(reply.job_id, edge.events_partitions) % REPLICAS for reply in replies]
    assert set(owners) == set(range(REPLICAS)), owners  # 16 random jobs: both owners (all on one: 2 in 65,536)
    async with (
        sse_client(read_timeout_s=30, ca_file=edge.server_ca_file) as client,
        contextlib.AsyncExitStack() as held,
        httpx.AsyncClient(timeout=5.0) as http,
    ):
        tailed_before = [await _gauge(http, port, "jobstream_sse_tailed_partitions") for port in metrics]
        for reply in replies:
            connection = await held.enter_async_context(sse_connect(client, reply.events_url))
            assert connection.response.status_code == 200
        open_streams = [await _gauge(http, port, "jobstream_sse_open_streams") for port in metrics]
        tailed = [await _gauge(http, port, "jobstream_sse_tailed_partitions") for port in metrics]
    for reply in replies:
        await stub.CancelJob(api.CancelJobRequest(job_id=reply.job_id), metadata=auth(api_key))
    assert open_streams == [float(owners.count(index)) for index in range(REPLICAS)]
    assert tailed == tailed_before, "a stream reached a bridge that does not own its partition"
    assert min(tailed) >= edge.events_partitions / REPLICAS
