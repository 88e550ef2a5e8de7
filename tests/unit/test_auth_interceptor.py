"""AuthInterceptor on a real in-process gRPC server: a call without a valid key is refused before its request
is parsed (and before it has even arrived), the handler learns the caller's tenant from it, health checks need
no key, and calls in flight are bounded per tenant, with a call that never sends its message ended soon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from jobstream.settings import Settings
from jobstream.v1 import job_service_pb2 as api
from services.job_service.auth_interceptor import CALLER, AuthInterceptor

METHOD = "/jobstream.v1.JobService/SubmitJob"
OPEN_METHOD = "/grpc.health.v1.Health/Check"


class Recorder:
    def __init__(self) -> None:
        self.parsed = 0
        self.tenants: list[str | None] = []

    def parse(self, data: bytes) -> api.SubmitJobRequest:
        self.parsed += 1
        return api.SubmitJobRequest.FromString(data)

    async def submit(self, request: api.SubmitJobRequest, context: Any) -> api.SubmitJobResponse:
        caller = CALLER.get(None)
        self.tenants.append(caller.tenant if caller else None)
        return api.SubmitJobResponse(job_id="job_x")


Served = tuple[grpc.aio.Channel, Recorder]


KEYS = json.dumps({"keys": {"good-key": "acme", "other-key": "globex"}, "tenants": {"acme": {"max_calls": 3}}})


@contextlib.asynccontextmanager
async def serving(settings: Settings, keys: str = KEYS) -> AsyncIterator[Served]:
    settings.state_dir.mkdir(exist_ok=True)
    (settings.state_dir / "api-keys.json").write_text(keys)
    recorder = Recorder()
    handlers = {
        "SubmitJob": grpc.unary_unary_rpc_method_handler(
            recorder.submit, recorder.parse, api.SubmitJobResponse.SerializeToString
        )
    }
    health = {"Check": grpc.unary_unary_rpc_method_handler(recorder.submit, recorder.parse, lambda r: b"")}
    server = grpc.aio.server(interceptors=[AuthInterceptor(settings)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("jobstream.v1.JobService", handlers),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", health),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, recorder
    await server.stop(None)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(Settings(state_dir=tmp_path)) as served:
        yield served


async def call(channel: grpc.aio.Channel, method: str, payload: bytes, key: str | None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    try:
        await channel.unary_unary(method, request_serializer=None, response_deserializer=None)(
            payload, metadata=metadata
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_no_key_or_a_wrong_one_is_refused_before_the_request_is_parsed(
    server: tuple[grpc.aio.Channel, Recorder],
) -> None:
    channel, recorder = server
    big = api.SubmitJobRequest(prompt="x" * 3_000_000).SerializeToString()
    assert await call(channel, METHOD, big, None) == grpc.StatusCode.UNAUTHENTICATED
    assert await call(channel, METHOD, big, "wrong-key") == grpc.StatusCode.UNAUTHENTICATED
    assert recorder.parsed == 0
    assert recorder.tenants == []


async def test_the_handler_learns_the_callers_tenant(server: tuple[grpc.aio.Channel, Recorder]) -> None:
    channel, recorder = server
    request = api.SubmitJobRequest(prompt="Hi").SerializeToString()
    assert await call(channel, METHOD, request, "good-key") == grpc.StatusCode.OK
    assert (recorder.parsed, recorder.tenants) == (1, ["acme"])
    # Outside the JobService (health, reflection) no key is asked for.
    assert await call(channel, OPEN_METHOD, request, None) == grpc.StatusCode.OK


async def test_a_broken_keys_file_is_unavailable_and_a_half_written_one_keeps_the_keys_read_before(
    tmp_path: Path,
) -> None:
    """An operator's broken edit: calls go on with the keys read before it; a process that never read the file
    whole says UNAVAILABLE (retryable), never UNKNOWN."""
    request = api.SubmitJobRequest(prompt="Hi").SerializeToString()
    async with serving(Settings(state_dir=tmp_path / "a")) as (channel, _):
        assert await call(channel, METHOD, request, "good-key") == grpc.StatusCode.OK
        (tmp_path / "a" / "api-keys.json").write_text(KEYS[: len(KEYS) // 2])
        assert await call(channel, METHOD, request, "good-key") == grpc.StatusCode.OK
    async with serving(Settings(state_dir=tmp_path / "b"), KEYS[: len(KEYS) // 2]) as (channel, _):
        assert await call(channel, METHOD, request, "good-key") == grpc.StatusCode.UNAVAILABLE


def test_the_server_bounds_what_a_client_can_hold() -> None:
    from services.job_service.__main__ import server_options

    options = dict(server_options(Settings(grpc_max_streams_per_connection=7, grpc_keepalive_s=9)))
    assert options["grpc.max_concurrent_streams"] == 7
    assert options["grpc.keepalive_time_ms"] == 9000
    assert options["grpc.http2.max_ping_strikes"] > 0  # a client that pings too often is cut off
    assert options["grpc.max_connection_age_ms"] > 0
    assert options["grpc.max_receive_message_length"] > Settings().max_input_bytes


async def _never() -> AsyncIterator[bytes]:
    await asyncio.Event().wait()
    yield b""  # pragma: no cover


def held_call(channel: grpc.aio.Channel, method: str, key: str | None) -> asyncio.Task[grpc.StatusCode]:
    """A call whose headers are sent and whose request message never is (as a slow or hostile client does)."""
    metadata = (("authorization", f"Bearer {key}"),) if key else ()

    async def run() -> grpc.StatusCode:
        try:
            await channel.stream_unary(method, request_serializer=None, response_deserializer=None)(
                _never(), metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    return asyncio.create_task(run())


async def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call()
    return result, time.monotonic() - started


async def test_a_call_without_a_key_is_refused_before_its_message_arrives(server: Served) -> None:
    channel, _ = server
    code, took = await timed(lambda: asyncio.wait_for(held_call(channel, METHOD, None), 5))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert took < 2


async def test_calls_in_flight_are_bounded_per_tenant_and_a_silent_call_ends(tmp_path: Path) -> None:
    request = api.SubmitJobRequest(prompt="Hi").SerializeToString()
    async with serving(Settings(state_dir=tmp_path, grpc_request_timeout_s=1.5)) as (channel, recorder):
        held = [held_call(channel, METHOD, "good-key") for _ in range(3)]
        await asyncio.sleep(0.3)
        # acme's three slots are taken: its next call is refused at once; another tenant and health are served.
        assert await call(channel, METHOD, request, "good-key") == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await call(channel, METHOD, request, "other-key") == grpc.StatusCode.OK
        assert await call(channel, OPEN_METHOD, request, None) == grpc.StatusCode.OK
        # The silent calls end once the request timeout has passed, and give their slots back.
        codes, took = await timed(lambda: asyncio.gather(*held))
        assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 3
        assert took < 3
        assert await call(channel, METHOD, request, "good-key") == grpc.StatusCode.OK
        assert recorder.tenants == ["globex", None, "acme"]


async def test_a_silent_health_check_ends_too(tmp_path: Path) -> None:
    async with serving(Settings(state_dir=tmp_path, grpc_request_timeout_s=0.5)) as (channel, _):
        code, _ = await timed(lambda: asyncio.wait_for(held_call(channel, OPEN_METHOD, None), 5))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
