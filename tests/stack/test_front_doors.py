"""No one client takes a front door from everyone (issue 22), against the real stack: calls that never send
their message hold no JobService slot, one tenant's calls are bounded, the bridge refuses a body before
reading it unless a key came with it and never reads past the limit, odd input is a JSON 4xx with no
traceback, and one prompt cannot freeze the CPU worker. Each attack runs while another tenant is served,
and how long that other tenant waited is printed (pytest -s) for the record."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import JobStatus
from tests.stack.helpers import (
    Stub,
    auth,
    job_service,
    post_upload,
    submit,
    tenant_key,
    tenant_with_limits,
    wait_terminal,
)

SUBMIT = "/jobstream.v1.JobService/SubmitJob"
COMBINING = "\u0301\u0316"  # two marks of different classes: NFC must sort every run of them


@pytest.fixture(scope="module")
async def stub(stack: Settings) -> AsyncIterator[Stub]:
    async with job_service(stack) as client:
        yield client


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call()
    return result, time.monotonic() - started


async def _never() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()
    yield b""  # pragma: no cover


async def held_call(channel: grpc.aio.Channel, key: str | None) -> grpc.StatusCode:
    """A SubmitJob whose headers are sent and whose request message never is."""
    metadata = auth(key) if key else ()
    try:
        await channel.stream_unary(SUBMIT, request_serializer=None, response_deserializer=None)(
            _never(), metadata=metadata
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def other_tenant_is_served(stack: Settings, stub: Stub, key: str, job_id: str) -> float:
    """How long an authenticated GetJob and a health check took together (both must succeed)."""
    async with grpc.aio.insecure_channel(stack.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def both() -> None:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(key), timeout=10)

        _, took = await timed(both)
        return took


async def hold_calls(stack: Settings, key: str | None, count: int, per_channel: int = 100) -> list[asyncio.Task[Any]]:
    """`count` held calls over connections of their own (each connection carries at most its stream limit)."""
    channels = [
        grpc.aio.insecure_channel(stack.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(-(-count // per_channel))
    ]
    tasks = [asyncio.create_task(held_call(channels[n // per_channel], key)) for n in range(count)]

    async def closed_after(task: asyncio.Task[Any]) -> None:
        await asyncio.wait([task])

    async def close_all() -> None:
        await asyncio.gather(*(closed_after(task) for task in tasks))
        await asyncio.gather(*(channel.close(None) for channel in channels))

    return [*tasks, asyncio.create_task(close_all())]


async def test_calls_that_never_send_their_message_take_no_slot_from_anyone(
    stack: Settings, stub: Stub, api_key: str
) -> None:
    job_id = (await submit(stub, api_key, max_tokens=2)).job_id
    held = await hold_calls(stack, None, 1200)
    await asyncio.sleep(1.0)
    took = await other_tenant_is_served(stack, stub, api_key, job_id)
    print(f"\nwith 1,200 anonymous calls held: GetJob + health took {took * 1000:.0f} ms")
    # Without a key, refused on the headers alone: none of them is still open. (The refusal ends a call whose
    # client has not finished sending; under load the client may see the stream's reset before the status.)
    codes = await asyncio.wait_for(asyncio.gather(*held[:-1]), 10)
    assert grpc.StatusCode.UNAUTHENTICATED in codes
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.CANCELLED}
    await held[-1]
    assert took < 2.0


async def test_one_tenants_calls_are_bounded_and_a_silent_call_ends(stack: Settings, stub: Stub, api_key: str) -> None:
    job_id = (await submit(stub, api_key, max_tokens=2)).job_id
    with tenant_with_limits(stack, "calls", max_calls=20) as (_, key):
        held = await hold_calls(stack, key, 300)
        await asyncio.sleep(1.0)
        took = await other_tenant_is_served(stack, stub, api_key, job_id)
        print(f"\nwith one tenant's 300 silent calls: another tenant's GetJob + health took {took * 1000:.0f} ms")
        assert took < 2.0
        # Past its 20, refused at once; its 20 end when their message has not come within the request timeout.
        # (As above, a refused call's client may see the reset before the status: CANCELLED.)
        done, _ = await asyncio.wait(held[:-1], timeout=2.0)
        assert len(done) == 280
        refused = [task.result() for task in done]
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in refused
        assert set(refused) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED}
        codes = await asyncio.wait_for(asyncio.gather(*held[:-1]), stack.grpc_request_timeout_s + 5)
        ended = [code for task, code in zip(held[:-1], codes, strict=True) if task not in done]
        assert len(ended) == 20
        assert grpc.StatusCode.DEADLINE_EXCEEDED in ended
        assert set(ended) <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
        await held[-1]
        # The slots came back: the tenant is served again.
        reply = await stub.ListJobs(api.ListJobsRequest(page_size=1), metadata=auth(key))
        assert list(reply.jobs) == []


async def test_a_tenants_watchers_are_bounded_too(stack: Settings, stub: Stub, api_key: str) -> None:
    job_id = (await submit(stub, api_key, pipeline="drill-slow", max_tokens=60)).job_id
    with tenant_with_limits(stack, "watch", max_calls=3) as (_, key):
        own = (await submit(stub, key, pipeline="drill-slow", max_tokens=60)).job_id
        watches = [stub.WatchJob(api.WatchJobRequest(job_id=own), metadata=auth(key)) for _ in range(3)]
        for watch in watches:
            await anext(aiter(watch))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetJob(api.GetJobRequest(job_id=own), metadata=auth(key))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_calls 3" in str(refused.value.details())
        assert (await stub.GetJob(api.GetJobRequest(job_id=job_id), metadata=auth(api_key))).job.job_id == job_id
        for watch in watches:
            watch.cancel()
        await stub.CancelJob(api.CancelJobRequest(job_id=own), metadata=auth(key))
    await stub.CancelJob(api.CancelJobRequest(job_id=job_id), metadata=auth(api_key))


# -- the bridge ----------------------------------------------------------------------------------------


async def raw_exchange(stack: Settings, head: bytes, body_bytes: int, chunk: int = 1 << 20) -> tuple[bytes, int]:
    """Send `head`, then up to `body_bytes` of body; the bridge's answer and how much of the body was sent
    before the bridge answered and closed the connection."""
    reader, writer = await asyncio.open_connection(stack.host, stack.bridge_port)
    sent = 0
    reply = b""
    try:
        writer.write(head)
        await writer.drain()
        while sent < body_bytes:
            answer = asyncio.ensure_future(reader.read(65536))
            writer.write(b"x" * chunk)
            drained = asyncio.ensure_future(writer.drain())
            done, _ = await asyncio.wait([answer, drained], timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
            if answer in done:
                reply = answer.result()
                drained.cancel()
                break
            answer.cancel()
            if drained not in done:
                break  # the bridge stopped reading
            sent += chunk
        # The head and the body may arrive in separate segments: read to the bridge's close or its silence.
        with contextlib.suppress(TimeoutError):
            while more := await asyncio.wait_for(reader.read(65536), 2 if reply else 5):
                reply += more
    except ConnectionError:
        pass
    finally:
        writer.close()
    return reply, sent


async def healthz_while(stack: Settings, attack: Awaitable[Any]) -> tuple[Any, float]:
    """The attack's outcome, and the slowest /healthz answer while it ran."""
    worst = 0.0
    task = asyncio.ensure_future(attack)
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as http:
        while not task.done():
            reply, took = await timed(lambda: http.get("/healthz"))
            assert reply.status_code == 200
            worst = max(worst, took)
            await asyncio.sleep(0.05)
    return task.result(), worst


async def test_the_bridge_reads_no_body_without_a_key_and_none_past_the_limit(stack: Settings, api_key: str) -> None:
    gib = 1 << 30
    anonymous = f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {gib}\r\n\r\n"
    (reply, sent), worst = await healthz_while(stack, raw_exchange(stack, anonymous.encode(), 96 << 20))
    print(
        f"\nan anonymous 1 GiB body: {sent >> 20} MiB sent before the answer; /healthz at worst {worst * 1000:.0f} ms"
    )
    assert reply.startswith(b"HTTP/1.1 401")
    assert sent < 16 << 20
    keyed = anonymous.replace("Host: x\r\n", f"Host: x\r\nAuthorization: Bearer {api_key}\r\n")
    reply, sent = await raw_exchange(stack, keyed.encode(), 96 << 20)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"resource_exhausted" in reply
    assert sent < 16 << 20
    # A body that does not say its length (one chunk of 1 GiB) is read up to the limit, no further.
    chunked = keyed.replace(f"Content-Length: {gib}", "Transfer-Encoding: chunked") + f"{gib:x}\r\n"
    reply, sent = await raw_exchange(stack, chunked.encode(), 96 << 20)
    assert reply.startswith(b"HTTP/1.1 413")
    assert sent < 48 << 20


async def test_a_body_shaped_to_be_slow_is_refused_before_it_is_parsed(stack: Settings, api_key: str) -> None:
    body = json.dumps({"prompt": "x", "params": {"stop": ["a"] * 5_000_000}}).encode()  # about 25 MiB

    async def post_twice() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=60) as http:
            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
            return list(await asyncio.gather(*(http.post("/v1/jobs", content=body, headers=headers) for _ in range(2))))

    replies, worst = await healthz_while(stack, post_twice())
    print(f"\ntwo 25 MiB bodies of 5 million values: /healthz at worst {worst * 1000:.0f} ms")
    for reply in replies:
        assert reply.status_code == 400, reply.text
        assert "values" in reply.json()["error"]["message"]
    assert worst < 2.0


async def test_odd_input_is_a_json_4xx_naming_what_is_wrong_and_logs_no_traceback(
    stack: Settings, api_key: str
) -> None:
    log = stack.state_dir / "logs" / "sse-bridge.log"
    before = log.stat().st_size if log.exists() else 0
    key = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as http:
        cases = [
            (await http.post("/v1/jobs", content=b'{"prompt": "\xff\xfe"}', headers=key), 400, ""),
            (await http.post("/v1/jobs", content=b"[" * 100_000, headers=key), 400, ""),
            (await http.post("/v1/jobs", content=b'{"a":' * 50 + b"1" + b"}" * 50, headers=key), 400, ""),
            (await http.get("/v1/jobs", params={"pageSize": "\u00b2"}, headers=key), 400, ""),
            (await http.get("/v1/jobs", headers=[(b"Authorization", "Bearer cl\u00e9".encode())]), 401, ""),
            (
                await http.post(f"/v1/jobs/job_{'a' * 26}:cancel", json={"jobId": f"job_{'b' * 26}"}, headers=key),
                400,
                "job_id",
            ),
        ]
    for reply, status, field in cases:
        assert reply.status_code == status, (reply.status_code, reply.text)
        error = reply.json()["error"]
        assert error["message"]
        if field:
            assert error["field"] == field
    await asyncio.sleep(0.5)
    written = log.read_bytes()[before:] if log.exists() else b""
    assert b"Traceback" not in written, written.decode(errors="replace")[-2000:]


# -- the CPU worker ------------------------------------------------------------------------------------


async def test_a_prompt_of_combining_marks_is_refused_and_freezes_no_worker(
    stack: Settings, stub: Stub, api_key: str, tmp_path: Path
) -> None:
    attack = "a" + COMBINING * 80_000  # 320 KiB of marks: minutes of NFC before
    with pytest.raises(grpc.aio.AioRpcError) as inline:
        await stub.SubmitJob(api.SubmitJobRequest(prompt=attack), metadata=auth(api_key))
    assert inline.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(inline.value.details()).startswith("prompt: has a run of more than 30 combining marks")
    # An upload reaches no check at the front door: the worker refuses it, at once, and keeps serving others.
    with tenant_key(stack, "marks") as (_, key):
        upload: api.CreateUploadResponse = await stub.CreateUpload(api.CreateUploadRequest(), metadata=auth(key))
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await post_upload(http, upload, attack.encode())).status_code in (200, 201, 204)
        marked = await stub.SubmitJob(api.SubmitJobRequest(input_ref=upload.input_ref), metadata=auth(key))
        other = await submit(stub, api_key, max_tokens=4)
        done, took = await timed(lambda: wait_terminal(stub, api_key, other.job_id, timeout_s=60))
        print(f"\nanother tenant's 4-token job beside a 320 KiB prompt of marks: {took:.2f} s")
        assert done.status == JobStatus.JOB_STATUS_SUCCEEDED
        failed = await wait_terminal(stub, key, marked.job_id, timeout_s=60)
        assert failed.status == JobStatus.JOB_STATUS_FAILED
        assert "combining marks" in failed.error.message
        assert took < 10


async def trickle(stack: Settings, stop: asyncio.Event) -> float | None:
    """A client that sends one header line a second and never ends its head: how long until the bridge closed
    the connection (None if it had not when `stop` was set)."""
    reader, writer = await asyncio.open_connection(stack.host, stack.bridge_port)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        line = 0
        while not stop.is_set():
            line += 1
            writer.write(f"X-Slow-{line}: 1\r\n".encode())
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()
    return None


async def test_clients_that_trickle_their_headers_are_cut_off(stack: Settings) -> None:
    stop = asyncio.Event()
    slow = [asyncio.create_task(trickle(stack, stop)) for _ in range(300)]
    await asyncio.sleep(2)
    worst = 0.0
    async with httpx.AsyncClient(base_url=stack.bridge_url, timeout=30) as http:
        for _ in range(10):
            reply, took = await timed(lambda: http.get("/healthz"))
            assert reply.status_code == 200
            worst = max(worst, took)
            await asyncio.sleep(0.2)
    print(f"\nwith 300 clients trickling header lines: /healthz at worst {worst * 1000:.0f} ms")
    done, _ = await asyncio.wait(slow, timeout=stack.bridge_header_timeout_s + 5)
    stop.set()
    held = [task.result() for task in done]
    assert len(held) == 300
    assert all(seconds is not None and seconds < stack.bridge_header_timeout_s + 3 for seconds in held), held


async def test_the_bridges_metrics_are_on_their_own_port_not_the_public_one(stack: Settings) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        public = await http.get(f"{stack.bridge_url}/metrics")
        private = await http.get(f"http://{stack.host}:{stack.bridge_metrics_port}/metrics")
    assert public.status_code == 404, public.text[:200]
    assert public.headers["content-type"].startswith("application/json")
    assert "jobstream_sse" not in public.text
    assert private.status_code == 200
    assert "jobstream_sse_open_streams" in private.text
