"""Trust holes, each proven closed against the real stack (issue 13): what was checked is what is processed,
uploads are bounded by the store itself, stream tokens die with their API key and are renewed by GetJob,
streams and running jobs are bounded per token and per tenant, and provisioning makes no key."""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from minio.error import S3Error
from temporalio.client import Client

from jobstream.job_events import with_fresh_result_url
from jobstream.keys_store import remove_key
from jobstream.payload_store import RESULT_URL_TTL, PayloadStore, TooLarge, minio_client
from jobstream.search_attributes import tenant_term
from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.event_pb2 import JobCompleted, JobEvent
from jobstream.v1.job_pb2 import GenerationParams, JobStatus
from jobstream.workflow_io import JOB_WORKFLOWS
from tests.stack.job_service_client import Stub, auth, job_service, post_upload, rpc_error, submit, wait_terminal
from tests.stack.sse_client import read_stream, sse_client, sse_connect
from tests.stack.tenants import tenant_key, tenant_with_limits

SHORT = b"Mr. Darcy"
LONG = b"It is a truth universally acknowledged, that a single man in possession of a good fortune " * 40


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


async def create_upload(stub: Stub, api_key: str) -> api.CreateUploadResponse:
    reply: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(api_key))
    return reply


async def prompt_tokens(stub: Stub, api_key: str, request: api.SubmitJobRequest) -> int:
    reply: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=auth(api_key))
    job = await wait_terminal(stub, api_key, reply.job_id, timeout_s=120)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
    return job.usage.prompt_tokens


async def test_an_upload_replaced_after_submit_changes_nothing(stub: Stub, api_key: str) -> None:
    """A tenant uploads a little, submits, then uploads again to the same URL before preprocess reads it (its
    stage is slowed by 3 s): the job processes what SubmitJob checked."""
    params = GenerationParams(max_tokens=4, seed=3)
    upload = await create_upload(stub, api_key)
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await post_upload(http, upload, SHORT)).is_success
        request = api.SubmitJobRequest(pipeline="drill-slow-cpu", input_ref=upload.input_ref, params=params)
        reply: api.SubmitJobResponse = await stub.SubmitJob(request, metadata=auth(api_key))
        assert (await post_upload(http, upload, LONG)).is_success  # the URL still takes uploads
    job = await wait_terminal(stub, api_key, reply.job_id, timeout_s=120)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
    inline = api.SubmitJobRequest(pipeline="generate", prompt=SHORT.decode(), params=params)
    assert job.usage.prompt_tokens == await prompt_tokens(stub, api_key, inline)


async def test_the_store_refuses_an_upload_over_the_limit_or_empty(stub: Stub, api_key: str, stack: Settings) -> None:
    upload = await create_upload(stub, api_key)
    async with httpx.AsyncClient(timeout=60) as http:
        too_large = await post_upload(http, upload, b"x" * (stack.max_input_bytes + 1))
        empty = await post_upload(http, upload, b"")
    assert too_large.status_code == 400, too_large.text
    assert "EntityTooLarge" in too_large.text
    assert empty.status_code == 400, empty.text
    assert "EntityTooSmall" in empty.text
    error = await rpc_error(stub.SubmitJob(api.SubmitJobRequest(input_ref=upload.input_ref), metadata=auth(api_key)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing has been uploaded" in (error.details() or "")


async def test_a_read_stops_one_byte_past_its_limit(stack: Settings) -> None:
    store = PayloadStore(stack)
    ref = await store.put("stages", LONG)
    assert await store.get(ref, limit=len(LONG)) == LONG
    with pytest.raises(TooLarge):
        await store.get(ref, limit=len(LONG) - 1)


async def admitted(client: httpx.AsyncClient, url: str) -> bool:
    async with sse_connect(client, url) as connection:
        return connection.response.status_code == 200


async def submitted_or_refused(stub: Stub, key: str) -> grpc.StatusCode:
    try:
        await submit(stub, key, max_tokens=2)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_stream_token_dies_with_its_api_key(stub: Stub, stack: Settings) -> None:
    with tenant_key(stack, "revoked") as (_, key):
        reply = await submit(stub, key, max_tokens=4)
        await wait_terminal(stub, key, reply.job_id)
        async with sse_client() as client:
            assert (await read_stream(client, reply.events_url))[-1].event == "job.completed"
            remove_key(stack, key)
            refused = await client.get(reply.events_url)
    assert refused.status_code == 403, refused.text
    assert "revoked" in refused.json()["error"]["message"]


async def test_revoking_a_key_ends_its_open_streams_within_seconds(stub: Stub, stack: Settings) -> None:
    with tenant_key(stack, "revoked-live") as (_, key):
        reply = await submit(stub, key, pipeline="drill-slow", max_tokens=400)  # 20 s of tokens
        async with sse_client() as client, sse_connect(client, reply.events_url) as connection:
            events = []
            revoked_at = 0.0
            async for event in connection.events():
                events.append(event)
                if event.event == "token" and not revoked_at:
                    remove_key(stack, key)
                    revoked_at = time.monotonic()
            ended_after = time.monotonic() - revoked_at
            again = await client.get(reply.events_url)
        print(f"\nthe stream ended {ended_after:.1f} s after its key was revoked")
        assert revoked_at, "no token arrived"
        assert events[-1].event == "token"  # ended mid-story, long before the job's end
        assert ended_after < 7.0
        assert again.status_code == 403, again.text
        # The job itself is the tenant's, not the key's: it runs on.


async def test_a_result_url_replayed_after_it_expired_is_signed_again(stack: Settings) -> None:
    store = PayloadStore(stack)
    ref = await store.put("results/test", LONG, "text/plain")
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    stale = store.client.presigned_get_object(
        store.bucket, store.key_of(ref), RESULT_URL_TTL, request_date=two_hours_ago
    )
    completed = JobEvent(type="job.completed", job_completed=JobCompleted(result_url=stale))
    fresh = (await with_fresh_result_url(completed, store)).job_completed.result_url
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(stale)).status_code == 403  # what a replay used to hand out
        answer = await http.get(fresh)
    assert answer.status_code == 200
    assert answer.content == LONG
    # A URL with most of its life left is handed out as it is.
    assert await store.fresh_url(fresh) == fresh


async def test_get_job_hands_out_a_fresh_stream_token(stub: Stub, api_key: str) -> None:
    reply = await submit(stub, api_key, max_tokens=4)
    await wait_terminal(stub, api_key, reply.job_id)
    got: api.GetJobResponse = await stub.GetJob(api.GetJobRequest(job_id=reply.job_id), metadata=auth(api_key))
    assert got.stream_token
    assert got.stream_token != reply.stream_token
    assert got.stream_token in got.events_url
    async with sse_client() as client:
        assert (await read_stream(client, got.events_url))[-1].event == "job.completed"


async def test_a_token_and_a_tenant_hold_at_most_their_limits_of_streams(stub: Stub, stack: Settings) -> None:
    with tenant_with_limits(stack, "streams", max_streams_per_token=2, max_streams=3) as (_, key):
        reply = await submit(stub, key, pipeline="drill-slow", max_tokens=200)  # streams for 10 s
        async with sse_client() as client:
            async with sse_connect(client, reply.events_url) as one, sse_connect(client, reply.events_url) as two:
                assert (one.response.status_code, two.response.status_code) == (200, 200)
                third = await client.get(reply.events_url)
                assert third.status_code == 429, third.text
                assert third.headers["retry-after"].isdigit()
                assert "max_streams_per_token" in third.json()["error"]["message"]
                # Another token for the same job has its own allowance, but the tenant's limit of 3 holds.
                fresh: api.GetJobResponse = await stub.GetJob(
                    api.GetJobRequest(job_id=reply.job_id), metadata=auth(key)
                )
                async with sse_connect(client, fresh.events_url) as own:
                    assert own.response.status_code == 200
                    fourth = await client.get(fresh.events_url)
                    assert fourth.status_code == 429, fourth.text
                    assert "max_streams)" in fourth.json()["error"]["message"]
            # Closed streams give their places back (once the bridge has seen them go).
            for _ in range(50):
                if await admitted(client, reply.events_url):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the closed streams' places never came back")
        await stub.CancelJob(api.CancelJobRequest(job_id=reply.job_id), metadata=auth(key))


async def test_a_tenant_at_its_limit_of_running_jobs_is_refused_and_nothing_starts(
    stub: Stub, stack: Settings, temporal_client: Client
) -> None:
    with tenant_with_limits(stack, "quota", max_running_jobs=1) as (tenant, key):
        first = await submit(stub, key, pipeline="drill-slow", max_tokens=60)
        error = await rpc_error(submit(stub, key, pipeline="drill-slow", max_tokens=4))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_running_jobs 1" in (error.details() or "")
        async with httpx.AsyncClient(timeout=30) as http:
            refused = await http.post(
                f"{stack.bridge_url}/v1/jobs", json={"prompt": "one more"}, headers={"authorization": f"Bearer {key}"}
            )
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["code"] == "resource_exhausted"
        assert (await temporal_client.count_workflows(f"{JOB_WORKFLOWS} AND {tenant_term(tenant)}")).count == 1
        await wait_terminal(stub, key, first.job_id)
        for _ in range(50):  # the count it is checked against is at most a second old
            code = await submitted_or_refused(stub, key)
            if code == grpc.StatusCode.OK:
                break
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the tenant could not submit again after its job ended")


def test_provisioning_makes_no_api_key_and_prints_none(stack: Settings, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys.json"
    env = {**os.environ, "JOBSTREAM_API_KEYS_FILE": str(keys), "JOBSTREAM_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "devstack.provision"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "js_" not in done.stdout + done.stderr
    assert not keys.exists()


async def test_the_services_minio_user_reaches_its_bucket_only(stub: Stub, api_key: str, stack: Settings) -> None:
    upload = await create_upload(stub, api_key)
    assert stack.minio_access_key != stack.minio_root_user
    # The URL a client gets is signed by the services' user, not MinIO's root.
    assert upload.upload_fields["x-amz-credential"].startswith(f"{stack.minio_access_key}/")
    services, root = minio_client(stack), minio_client(stack, stack.minio_root_user, stack.minio_root_password)
    other = f"jobstream-other-{secrets.token_hex(4)}"
    root.make_bucket(other)
    try:
        # It sees its own bucket only, and can neither make another nor touch one.
        assert [bucket.name for bucket in services.list_buckets()] == [stack.minio_bucket]
        for attempt in (
            lambda: services.make_bucket(f"{other}-2"),
            lambda: services.put_object(other, "x", io.BytesIO(b"x"), 1),
            lambda: services.list_objects(other).__next__(),
        ):
            with pytest.raises(S3Error) as denied:
                attempt()
            assert denied.value.code == "AccessDenied"
    finally:
        root.remove_bucket(other)
